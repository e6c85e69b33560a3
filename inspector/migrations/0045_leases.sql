-- Leases: a duty that must run in one process only (delivery of one integration, the retention
-- purge) belongs to the holder of its lease until it expires. A holder renews well before
-- `expires` (epoch ms); a holder that died stops renewing, so its lease lapses and another
-- process takes it (inspector/leases.py, gateway/duties.py).
CREATE TABLE IF NOT EXISTS leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    expires  INTEGER NOT NULL
);
