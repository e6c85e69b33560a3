-- Device Controller requests for UDP and CoAP (gateway/controller/, inspector/device_actions.py).
-- LwM2M action requests stay in lwm2m_actions; the API lists both through one query.
CREATE TABLE device_actions (
    id             TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL,
    iccid          TEXT NOT NULL,
    protocol       TEXT NOT NULL CHECK (protocol IN ('UDP', 'COAP')),
    mode           TEXT NOT NULL,
    request        TEXT NOT NULL,
    send_attempts  INTEGER NOT NULL,
    attempts_left  INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('SCHEDULED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    result         TEXT,
    ip             TEXT,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    expires_ms     INTEGER NOT NULL
);
CREATE INDEX device_actions_status ON device_actions (status, iccid);
CREATE INDEX device_actions_by_device ON device_actions (iccid, created_ms);
