-- One SMS counter (docs/sms.md, gateway/connectivity/quota.py): MT and MO SMS now count against
-- the connectivity SMS quota (sim_quotas, service 'sms') instead of a count of the sms table
-- against [sms] quota. SMS stored before this migration are carried over: added to an existing
-- 'sms' quota row, or a new row with the built-in defaults (250 SMS, a 10-year lifetime from the
-- SIM's first SMS; `nce-gateway sims topup` or the API adjust it). Canceled MT SMS never counted.
UPDATE sim_quotas SET used = used + (
    SELECT COALESCE(SUM(sms.parts), 0) FROM sms WHERE sms.iccid = sim_quotas.iccid AND sms.status <> 'CANCELED')
WHERE service = 'sms';
INSERT INTO sim_quotas (iccid, service, total, used, expiry_ms, last_volume_added, last_change_ms)
SELECT iccid, 'sms', 250, SUM(parts), MIN(submit_ms) + 315360000000, 250, MAX(submit_ms)
FROM sms
WHERE status <> 'CANCELED' AND iccid NOT IN (SELECT q.iccid FROM sim_quotas q WHERE q.service = 'sms')
GROUP BY iccid;
-- The expiry sweep looks for quota rows by expiry date.
CREATE INDEX sim_quotas_by_expiry ON sim_quotas (expiry_ms);
