-- PostgreSQL only: the numbers of messages and events (SQLite keeps them in sqlite_sequence).
-- A commit takes its numbers with UPDATE ... RETURNING on this table: the row lock is held to
-- the end of the transaction, so numbers become visible in increasing order (a reader that
-- sees N also sees every row numbered at or below N), which history snapshots and replay need.
CREATE TABLE store_sequences (name TEXT PRIMARY KEY, seq BIGINT NOT NULL);
INSERT INTO store_sequences (name, seq)
    SELECT 'messages', COALESCE(MAX(seq), 0) FROM messages
    UNION ALL SELECT 'events', COALESCE(MAX(seq), 0) FROM events;
