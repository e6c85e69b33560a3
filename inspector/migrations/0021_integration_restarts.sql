-- How often each integration was restarted (CLI, API): a running gateway that sees the number
-- move replaces the integration's worker and sender (fresh attempts, certificates read again),
-- and a worker of an earlier restart can no longer write attempt counts into the outbox.
ALTER TABLE integrations ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
