-- The events of one device other than telemetry (lifecycle, errors, locations, and later network
-- events), newest first, for the console's device page and GET /v1/inspect/devices/{id}/events.
-- Partial, so that telemetry (the hot path, and already indexed per device in messages) costs no
-- extra index work at commit time.
CREATE INDEX IF NOT EXISTS events_by_device ON events (iccid, seq) WHERE type != 'TELEMETRY_DATA';
