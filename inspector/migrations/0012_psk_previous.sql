-- The key a SIM used on the DTLS port before its key was rotated or replaced: still accepted
-- until until_ms (the rotation's grace period), so a device that has not learnt the new key yet
-- is not locked out (docs/dtls.md, "One credential per SIM").
CREATE TABLE IF NOT EXISTS psk_previous (
    iccid    TEXT PRIMARY KEY,
    key      BLOB NOT NULL,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS psk_previous_changed_insert AFTER INSERT ON psk_previous
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'psks_version'; END;
CREATE TRIGGER IF NOT EXISTS psk_previous_changed_update AFTER UPDATE ON psk_previous
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'psks_version'; END;
CREATE TRIGGER IF NOT EXISTS psk_previous_changed_delete AFTER DELETE ON psk_previous
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'psks_version'; END;
