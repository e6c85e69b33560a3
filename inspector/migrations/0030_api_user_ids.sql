-- User ids are never reused: api_users gets AUTOINCREMENT (SQLite otherwise hands the id of
-- the highest deleted row to the next user, which would inherit the old user's live tokens).
-- SQLite cannot add AUTOINCREMENT to a table, so the table is rebuilt; its triggers go with
-- the old table and are created again.
CREATE TABLE api_users_new (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    username              TEXT NOT NULL UNIQUE,   -- e-mail address, stored lower-case
    password_hash         TEXT NOT NULL,          -- argon2id (PHC string)
    role                  TEXT NOT NULL CHECK (role IN ('Owner', 'Admin', 'User', 'API')),
    status                TEXT NOT NULL DEFAULT 'Enabled' CHECK (status IN ('Enabled', 'Disabled')),
    -- tokens issued before this moment are invalid (disable, password change, "revoke all")
    tokens_valid_after_ms INTEGER NOT NULL DEFAULT 0,
    created_ms            INTEGER NOT NULL,
    updated_ms            INTEGER NOT NULL,
    last_login_ms         INTEGER
);
-- ids of users deleted before this migration are not known; revoked tokens remember some
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'api_users_new', COALESCE(MAX(user_id), 0) FROM api_revoked_tokens;
INSERT INTO api_users_new (id, username, password_hash, role, status, tokens_valid_after_ms, created_ms,
                           updated_ms, last_login_ms)
    SELECT id, username, password_hash, role, status, tokens_valid_after_ms, created_ms, updated_ms, last_login_ms
    FROM api_users;
DROP TABLE api_users;
ALTER TABLE api_users_new RENAME TO api_users;
UPDATE meta SET value = value + 1 WHERE key = 'accounts_version';
CREATE TRIGGER IF NOT EXISTS api_users_changed_insert AFTER INSERT ON api_users
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'accounts_version'; END;
CREATE TRIGGER IF NOT EXISTS api_users_changed_update AFTER UPDATE ON api_users
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'accounts_version'; END;
CREATE TRIGGER IF NOT EXISTS api_users_changed_delete AFTER DELETE ON api_users
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'accounts_version'; END;
