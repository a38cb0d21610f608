-- reclamp_due_leads --
-- Move the first `take` leads to place (claims.Placing: longest waiting first, those a previous resume placed before those it parked; -1: all) to their sending slots (the plan is a JSON array of [zone, lo, hi, opens, closes, gap] with epoch seconds); each zone's lead k takes its zone's plan row whose [lo, hi) holds k; a lead beyond its zone's rows stays as it is.
WITH plan AS (
  SELECT json_extract(value, '$[0]') AS zone, json_extract(value, '$[1]') AS lo, json_extract(value, '$[2]') AS hi,
         json_extract(value, '$[3]') AS opens, json_extract(value, '$[4]') AS closes,
         json_extract(value, '$[5]') AS gap
    FROM json_each(:plan)
), picked AS (
  SELECT id, COALESCE(timezone, '') AS zone, next_action_at,
         CASE WHEN next_action_at < :prior THEN 1 ELSE 0 END AS parked
    FROM leads
   WHERE campaign_id = :campaign_id AND {workable} AND next_action_at <= :now
     AND lease_owner IS NULL AND awaiting IS NULL AND (:below IS NULL OR next_action_at < :below)
   ORDER BY parked, next_action_at, id
   LIMIT :take
), due AS (
  SELECT id, zone, row_number() OVER (PARTITION BY zone ORDER BY parked, next_action_at, id) - 1 AS k FROM picked
), moved AS (
  SELECT d.id, CAST(round(CASE WHEN :randomize
                               THEN p.opens + (p.closes - p.opens) * (random() / 18446744073709551616.0 + 0.5)
                               ELSE min(p.opens + (d.k - p.lo) * p.gap, p.closes - 0.001) END * 1000000) AS INTEGER) AS us
    FROM due AS d JOIN plan AS p ON p.zone = d.zone AND d.k >= p.lo AND d.k < p.hi
)
UPDATE leads
   SET next_action_at = strftime('%Y-%m-%d %H:%M:%S', m.us / 1000000, 'unixepoch') || '.' || printf('%06d', m.us % 1000000)
  FROM moved AS m
 WHERE leads.id = m.id;

-- opt_out_suppressed_leads --
-- Of a batch of leads just claimed (a JSON array of [id, phone hash, email hash]), those with an address on the workspace's suppression list, by address or by the keyed hash an erasure leaves, become opted_out, released, their attempt number given back; returns their ids.
UPDATE leads
   SET state = 'opted_out', lease_owner = NULL, lease_expires_at = NULL, attempt_no = leads.attempt_no - 1,
       updated_at = :now
  FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS phone_hash,
               json_extract(value, '$[2]') AS email_hash
          FROM json_each(:batch)) AS h
 WHERE leads.id = h.id
   AND (EXISTS (SELECT 1 FROM suppressions AS s WHERE s.workspace_id = :workspace_id AND s.phone = leads.phone)
        OR EXISTS (SELECT 1 FROM suppressions AS s WHERE s.workspace_id = :workspace_id AND s.email = leads.email)
        OR EXISTS (SELECT 1 FROM suppressions AS s WHERE s.workspace_id = :workspace_id
                      AND s.address_hash IN (h.phone_hash, h.email_hash)))
RETURNING leads.id;
