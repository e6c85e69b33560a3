-- PostgreSQL only: every change of a follower's version counter in `meta` (every key ending in
-- `_version`: sims, psks, templates, integrations, accounts, bindings, geofences, endpoints,
-- os_settings, and any added later) is announced on the channel `nce_changes`, payload the key. NOTIFY is transactional: it is sent
-- at the commit of the change (never for a rolled-back one), and a listener that reads the
-- version after the notification sees the change. Each gateway process listens on one connection
-- (inspector/store/pg_listen.py) and runs its follower's check at once; polling stays the fallback.
CREATE OR REPLACE FUNCTION nce_notify_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nce_changes', NEW.key);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS meta_notify ON meta;
CREATE TRIGGER meta_notify AFTER UPDATE ON meta FOR EACH ROW
    WHEN (NEW.value IS DISTINCT FROM OLD.value AND NEW.key LIKE '%\_version')
    EXECUTE FUNCTION nce_notify_version();
