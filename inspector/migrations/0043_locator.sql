-- Device Locator: the cell table (OpenCelliD's CSV columns), cell-tower positions with their
-- accuracy, geofences and the durable inside/outside state per device and geofence.
CREATE TABLE cells (
    mcc            INTEGER NOT NULL,
    mnc            INTEGER NOT NULL,
    cell           INTEGER NOT NULL,
    area           INTEGER NOT NULL,
    radio          TEXT NOT NULL,
    unit           INTEGER,
    lon            REAL NOT NULL,
    lat            REAL NOT NULL,
    cell_range     INTEGER NOT NULL,
    samples        INTEGER,
    changeable     INTEGER,
    created        INTEGER,
    updated        INTEGER,
    average_signal INTEGER,
    PRIMARY KEY (mcc, mnc, cell, area, radio)
);
ALTER TABLE positions ADD COLUMN accuracy REAL;
ALTER TABLE positions ADD COLUMN metadata TEXT;
CREATE TABLE geofences (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    device_id     TEXT,
    geometry      TEXT NOT NULL,
    event_types   TEXT NOT NULL,
    event_sources TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
);
CREATE TABLE geofence_states (
    geofence_id TEXT NOT NULL,
    iccid       TEXT NOT NULL,
    state       TEXT NOT NULL,
    changed_ms  INTEGER NOT NULL,
    PRIMARY KEY (geofence_id, iccid)
);
-- Cell ids the cell table did not know (the activity route lists them as FAILED resolutions).
CREATE TABLE cell_misses (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    iccid       TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    protocol    TEXT NOT NULL,
    metadata    TEXT NOT NULL
);
CREATE INDEX cell_misses_by_device ON cell_misses (iccid, received_ms);
