-- LwM2M: registrations (survive a restart), which SIMs ever registered (LIFECYCLE
-- DEVICE_FIRST_TIME_REGISTERED once per SIM), standing observations, device actions.
-- The 'LWM2M' PSKs written at bootstrap over DTLS live in psks (0003_psk).
CREATE TABLE lwm2m_registrations (
    id            TEXT PRIMARY KEY,
    iccid         TEXT NOT NULL UNIQUE,
    lifetime      INTEGER NOT NULL,
    version       TEXT NOT NULL,
    binding       TEXT NOT NULL,
    queue         INTEGER NOT NULL,
    sms           TEXT,
    links         TEXT NOT NULL,
    transport     TEXT NOT NULL,
    ip            TEXT NOT NULL,
    port          INTEGER NOT NULL,
    registered_ms INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE lwm2m_devices (
    iccid               TEXT PRIMARY KEY,
    first_registered_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE lwm2m_observations (
    iccid       TEXT NOT NULL,
    path        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (iccid, path)
) WITHOUT ROWID;

CREATE TABLE lwm2m_actions (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    iccid          TEXT NOT NULL,
    action         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    data           TEXT,
    mode           TEXT NOT NULL,
    send_attempts  INTEGER NOT NULL,
    attempts_left  INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('SCHEDULED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    result         TEXT,
    ip             TEXT,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
);
CREATE INDEX lwm2m_actions_open ON lwm2m_actions (status) WHERE status IN ('SCHEDULED', 'IN_PROGRESS');
CREATE INDEX lwm2m_actions_by_device ON lwm2m_actions (iccid, created_ms);
