-- Connectivity (SPEC §8): what the mobile core reported about each SIM over RADIUS accounting.
-- One row per SIM that was ever reported: its address binding (ip_address NULL = no session),
-- the session's attributes and counters, and a block (quota, limit, IMEI lock).
-- change_seq comes from meta 'bindings_version' and grows with every change of a row, so another
-- process follows the table by reading the rows changed since the highest number it has seen.
-- All statements here and in inspector/bindings.py are portable SQL (no SQLite-only syntax).
CREATE TABLE sim_bindings (
    iccid              TEXT PRIMARY KEY,
    ip_address         TEXT UNIQUE,
    source             TEXT NOT NULL,
    session_id         TEXT,
    nas_ip             TEXT,
    imeisv             TEXT,
    rat_type           INTEGER,
    apn                TEXT,
    msisdn             TEXT,
    location           TEXT,
    session_started_ms INTEGER,
    input_octets       BIGINT NOT NULL DEFAULT 0,
    output_octets      BIGINT NOT NULL DEFAULT 0,
    block_reason       TEXT,
    updated_ms         BIGINT NOT NULL,
    change_seq         BIGINT NOT NULL
);
CREATE INDEX sim_bindings_by_change ON sim_bindings (change_seq);
INSERT INTO meta (key, value) VALUES ('bindings_version', 0);

-- Data used per SIM and UTC day, from the accounting counters (bytes).
CREATE TABLE sim_usage_daily (
    iccid     TEXT NOT NULL,
    day       TEXT NOT NULL,
    rx_bytes  BIGINT NOT NULL DEFAULT 0,
    tx_bytes  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (iccid, day)
);

-- Per-SIM network events are in `events`; GET /v1/sims/{iccid}/events reads them through this
-- index (the same definition as the device-events migration's, hence IF NOT EXISTS).
CREATE INDEX IF NOT EXISTS events_by_device ON events (iccid, seq) WHERE type != 'TELEMETRY_DATA';

-- Lifetime quotas per SIM and service ('data' in bytes, 'sms' in messages). A SIM without a
-- row has the configured default and has used nothing.
CREATE TABLE sim_quotas (
    iccid             TEXT NOT NULL,
    service           TEXT NOT NULL CHECK (service IN ('data', 'sms')),
    total             BIGINT NOT NULL,
    used              BIGINT NOT NULL DEFAULT 0,
    expiry_ms         BIGINT NOT NULL,
    last_volume_added BIGINT NOT NULL,
    last_change_ms    BIGINT NOT NULL,
    PRIMARY KEY (iccid, service)
);

-- Connection resets (Disconnect-Request, RFC 5176) and their outcome.
CREATE TABLE sim_resets (
    id          INTEGER PRIMARY KEY,
    iccid       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    nas_ip      TEXT,
    session_id  TEXT,
    state       TEXT NOT NULL,
    requested_ms BIGINT NOT NULL,
    answered_ms BIGINT
);
CREATE INDEX sim_resets_by_device ON sim_resets (iccid, id);

-- Self-set monthly limits of the account (one per service: data, smsMo, smsMt; an option id of
-- gateway/connectivity/limits.py), and per-SIM settings (automatic top-up).
CREATE TABLE sim_limits (
    service    TEXT PRIMARY KEY,
    limit_id   INTEGER NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE sim_settings (
    iccid      TEXT PRIMARY KEY,
    auto_topup INTEGER NOT NULL DEFAULT 0,
    updated_ms BIGINT NOT NULL
);

-- When the SIM was announced to integrations (a LIFECYCLE event SIM_ADDED). SIMs that exist when
-- this migration runs count as announced; a SIM added later is announced once, by whichever
-- gateway process claims it first.
ALTER TABLE sims ADD COLUMN announced_ms BIGINT;
UPDATE sims SET announced_ms = created_ms;
