-- The rest of the 1NCE OS API (issue 14 item 4): 1NCE OS settings and agreements, the on/off
-- state of the device endpoints, PSK import jobs and their rows, Energy Saver savings per day,
-- and the state of installed partner plugins. Portable SQL (plain types, no WITHOUT ROWID).
CREATE TABLE IF NOT EXISTS os_settings (
    name        TEXT PRIMARY KEY,
    state       TEXT NOT NULL,              -- ENABLED or DISABLED
    updated_ms  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS os_agreements (
    name        TEXT PRIMARY KEY,           -- TERMS_OF_USE_AND_DPA
    accepted_ms INTEGER NOT NULL,
    accepted_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_states (
    protocol    TEXT PRIMARY KEY,           -- UDP, COAP, COAPS, LWM2M
    active      INTEGER NOT NULL,
    settings    TEXT,                       -- JSON: {"LWM2M_PASSIVE_REPORTING": "ENABLED"}
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS psk_jobs (
    id          TEXT PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    status      TEXT NOT NULL,              -- IN_PROGRESS or DONE
    source      TEXT NOT NULL,              -- API or CLI
    amount      INTEGER NOT NULL,
    done        INTEGER NOT NULL,
    failed      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS psk_jobs_by_time ON psk_jobs (created_ms);
-- one row per imported key: never the key itself, only whether it was set and why not
CREATE TABLE IF NOT EXISTS psk_job_rows (
    job_id      TEXT NOT NULL,
    line        INTEGER NOT NULL,
    iccid       TEXT,
    protocol    TEXT,
    ok          INTEGER NOT NULL,
    reason      TEXT,
    PRIMARY KEY (job_id, line)
);
CREATE TABLE IF NOT EXISTS bcl_savings (
    day         TEXT NOT NULL,              -- UTC date, YYYY-MM-DD
    iccid       TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    messages    INTEGER NOT NULL,
    bytes_in    INTEGER NOT NULL,           -- the compressed payloads as received
    bytes_out   INTEGER NOT NULL,           -- the decoded JSON they became
    PRIMARY KEY (day, iccid, protocol)
);
CREATE TABLE IF NOT EXISTS plugin_states (
    id          TEXT PRIMARY KEY,           -- the entry point's name
    status      TEXT NOT NULL,              -- INSTALLED, FAILED, UNINSTALLED
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    message     TEXT
);
