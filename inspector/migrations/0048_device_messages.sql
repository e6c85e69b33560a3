-- One device's history without an index on `messages` inside the group commit (issue #16 item 4).
-- `messages_by_device` made every group commit dirty about one index leaf page per active SIM
-- (500 SIMs: ~500 pages written to the WAL per commit). `device_messages` holds the same keys, in
-- a table of its own filled after the commits, in bulk and sorted by device, every ~0.5 s
-- (SqliteStore.fill_device_index, in the writer thread): each leaf page is written once per fill.
-- `meta.device_messages_upto` is the highest message seq copied: every message at or below it is
-- in device_messages (the fill moves it in the same transaction), every message above it is read
-- from `messages` by seq (inspector/history.py). The fill is derived from `messages`, so a killed
-- process loses nothing: the next fill resumes from the mark.
CREATE TABLE device_messages (
    iccid       TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    protocol    TEXT NOT NULL,
    PRIMARY KEY (iccid, received_ms, seq)
) WITHOUT ROWID;
INSERT INTO device_messages (iccid, received_ms, seq, protocol)
    SELECT iccid, received_ms, seq, protocol FROM messages ORDER BY iccid, received_ms, seq;
INSERT INTO meta (key, value) SELECT 'device_messages_upto', COALESCE(MAX(seq), 0) FROM messages;
DROP INDEX messages_by_device;
