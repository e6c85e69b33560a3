-- Replay (issue 20): outbox rows put back from the stored events are marked, so the delivered
-- JSON says "replayed": true.
ALTER TABLE outbox ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0;
