-- Administration logs: every change made through the management API (and the CLI), with who
-- made it and the request body with its secrets removed. Kept for the retention period.
CREATE TABLE IF NOT EXISTS admin_logs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    created_ms      INTEGER NOT NULL,
    source          TEXT NOT NULL,          -- API or CLI
    actor           TEXT NOT NULL,          -- user name (API) or operating-system user (CLI)
    role            TEXT NOT NULL,          -- the actor's role (CLI: 'CLI')
    ip              TEXT,
    type            TEXT NOT NULL,          -- GENERAL, DEVICE, INTEGRATION, LOCATION, LIFECYCLE
    category        TEXT NOT NULL,          -- info or error
    iccid           TEXT,
    integration_id  TEXT,
    message         TEXT NOT NULL,
    description     TEXT NOT NULL,
    payload         TEXT                    -- JSON, secrets replaced by "***"
);
CREATE INDEX IF NOT EXISTS admin_logs_by_time ON admin_logs (created_ms);
CREATE INDEX IF NOT EXISTS admin_logs_by_device ON admin_logs (iccid, created_ms);
