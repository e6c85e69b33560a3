-- SMS (docs/sms.md): MT SMS from the API (also the SMS outbox: rows QUEUED are still to send),
-- MO SMS from the SMSC, and their usage per SIM and day (the `day` column).
CREATE TABLE sms (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    iccid               TEXT NOT NULL,
    direction           TEXT NOT NULL,
    msisdn              TEXT,
    source_address      TEXT,
    source_address_type INTEGER,
    dcs                 INTEGER NOT NULL,
    udh                 TEXT,
    payload             TEXT NOT NULL,
    parts               INTEGER NOT NULL,
    status              TEXT NOT NULL,
    submit_ms           INTEGER NOT NULL,
    expiry_ms           INTEGER,
    delivery_ms         INTEGER,
    final_ms            INTEGER,
    last_attempt_ms     INTEGER,
    next_attempt_ms     INTEGER NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    day                 TEXT NOT NULL
);
CREATE INDEX sms_by_sim ON sms (iccid, id);
CREATE INDEX sms_by_status ON sms (status, next_attempt_ms);
-- One row per submit_sm of an MT SMS: its body, and the SMSC's message id once accepted.
CREATE TABLE sms_parts (
    sms_id        INTEGER NOT NULL,
    part          INTEGER NOT NULL,
    short_message BLOB NOT NULL,
    esm_class     INTEGER NOT NULL,
    message_id    TEXT,
    status        TEXT NOT NULL,
    PRIMARY KEY (sms_id, part)
);
CREATE INDEX sms_parts_by_message_id ON sms_parts (message_id);
-- Parts of concatenated MO SMS until the last one arrives (acknowledged once stored here).
CREATE TABLE sms_mo_parts (
    msisdn      TEXT NOT NULL,
    reference   INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    dcs         INTEGER NOT NULL,
    body        BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (msisdn, reference, total, number)
);
