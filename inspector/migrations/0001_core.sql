-- SIM registry, inspector history, events, outbox, integrations.
-- Sequence columns are AUTOINCREMENT: a number is never given out twice, even after the rows
-- holding the highest ones were deleted (delivered outbox rows, purged history), because the
-- delivery worker and the inspector's page tokens remember positions by sequence number.
CREATE TABLE sims (
    iccid       TEXT PRIMARY KEY,
    imsi        TEXT NOT NULL,
    ip_address  TEXT NOT NULL UNIQUE,
    msisdn      TEXT,
    imei        TEXT,
    label       TEXT,
    status      TEXT NOT NULL CHECK (status IN ('Enabled', 'Disabled')),
    imei_lock   INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('sims_version', 0), ('integrations_version', 0);
CREATE TRIGGER sims_changed_insert AFTER INSERT ON sims
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'sims_version'; END;
CREATE TRIGGER sims_changed_update AFTER UPDATE ON sims
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'sims_version'; END;
CREATE TRIGGER sims_changed_delete AFTER DELETE ON sims
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'sims_version'; END;

CREATE TABLE messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    iccid       TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    topic       TEXT,
    payload     BLOB NOT NULL,
    translated  TEXT,
    error       TEXT,
    event_id    TEXT
);
CREATE INDEX messages_by_device ON messages (iccid, received_ms);
CREATE INDEX messages_by_time ON messages (received_ms);
CREATE TABLE latest (
    iccid       TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    message_seq INTEGER NOT NULL,
    PRIMARY KEY (iccid, protocol)
) WITHOUT ROWID;

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    iccid       TEXT,
    created_ms  INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (created_ms);

CREATE TABLE integrations (
    id          INTEGER PRIMARY KEY,
    uuid        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    origin      TEXT NOT NULL CHECK (origin IN ('config', 'api')),
    config      TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE TRIGGER integrations_changed_insert AFTER INSERT ON integrations
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'integrations_version'; END;
CREATE TRIGGER integrations_changed_update AFTER UPDATE ON integrations
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'integrations_version'; END;
CREATE TRIGGER integrations_changed_delete AFTER DELETE ON integrations
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'integrations_version'; END;

CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    integration_id  INTEGER NOT NULL,
    event_seq       INTEGER NOT NULL,
    iccid           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_by_integration ON outbox (integration_id, seq);
