-- Energy Saver translation templates (BCL). At most one ACTIVE template per protocol; the
-- gateway enforces that rule when a template is created or changed.
CREATE TABLE templates (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    template    TEXT NOT NULL,
    protocols   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE')),
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('templates_version', 0);
CREATE TRIGGER templates_changed_insert AFTER INSERT ON templates
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'templates_version'; END;
CREATE TRIGGER templates_changed_update AFTER UPDATE ON templates
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'templates_version'; END;
CREATE TRIGGER templates_changed_delete AFTER DELETE ON templates
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'templates_version'; END;
