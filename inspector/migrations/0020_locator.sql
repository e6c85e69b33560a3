-- Positions reported by devices (BCL custom_type location_lat/location_long, LwM2M object 6),
-- kept for the Device Locator.
CREATE TABLE positions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    iccid       TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    source      TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL
);
CREATE INDEX positions_by_device ON positions (iccid, received_ms);
