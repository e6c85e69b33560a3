-- PostgreSQL: api_users.id is already an identity column (never reused), so the SQLite
-- table rebuild of 0030_api_user_ids.sql (sqlite_sequence, AUTOINCREMENT) has nothing to do.
SELECT 1;
