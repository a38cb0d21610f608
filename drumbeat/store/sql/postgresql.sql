-- write_attempt_outcomes --
-- Record a batch of provider answers in one statement (arrays, one element per attempt), and the attempt of each provider message id (written again unchanged when an outcome is recorded twice).
WITH answered AS (
  UPDATE attempts AS a
     SET status = o.status, provider_message_id = o.provider_message_id, error_code = o.error_code,
         error_class = o.error_class, error_message = o.error_message,
         counted_failure = o.counted_failure, updated_at = :now
    FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:message_ids AS text[]),
                CAST(:codes AS text[]), CAST(:classes AS text[]), CAST(:texts AS text[]),
                CAST(:counted AS boolean[]))
         AS o(id, status, provider_message_id, error_code, error_class, error_message, counted_failure)
   WHERE a.id = o.id
  RETURNING a.id, a.provider_message_id
)
INSERT INTO provider_messages (attempt_id, provider_message_id)
SELECT id, provider_message_id FROM answered WHERE provider_message_id IS NOT NULL
ON CONFLICT (attempt_id) DO UPDATE SET provider_message_id = excluded.provider_message_id;

-- write_lead_outcomes --
-- Move a batch of leads after their attempts, only while this worker still holds their lease. The state test is wrapped in CASE so no index can serve it: with a plain IN the planner, misled by statistics that lag behind the churning leases, scanned every workable lead through ix_leads_due for each batch (60 ms at 60,000 leads) instead of looking the batch up by primary key.
UPDATE leads AS l
   SET state = o.state, current_step = o.current_step, next_action_at = o.next_action_at,
       retries = o.retries, attempt_no = o.attempt_no, last_error = o.last_error, awaiting = o.awaiting,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
  FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]), CAST(:steps AS int[]),
              CAST(:next_at AS timestamptz[]), CAST(:retries AS int[]), CAST(:attempt_nos AS int[]),
              CAST(:errors AS text[]), CAST(:awaiting AS text[]))
       AS o(id, state, current_step, next_action_at, retries, attempt_no, last_error, awaiting)
 WHERE l.id = o.id AND l.lease_owner = :owner
   AND CASE WHEN l.{workable} THEN true ELSE false END;

-- insert_sending_attempts --
-- Start a batch of attempts (status sending, with the variant each sends) in one statement; returns each attempt's lead.
INSERT INTO attempts (lead_id, campaign_id, step, channel, integration_id, run, idempotency_key, status,
                      counted_failure, created_at, updated_at, variant)
SELECT o.lead_id, :campaign_id, o.step, o.channel, o.integration_id, :run, o.idempotency_key, 'sending',
       false, :now, :now, o.variant
  FROM unnest(CAST(:lead_ids AS bigint[]), CAST(:steps AS int[]), CAST(:channels AS text[]),
              CAST(:integration_ids AS text[]), CAST(:keys AS text[]), CAST(:variants AS smallint[]))
       AS o(lead_id, step, channel, integration_id, idempotency_key, variant)
RETURNING id, lead_id;

-- defer_claimed_leads --
-- Release leads claimed outside their sending window, due again at their next slot.
UPDATE leads AS l
   SET next_action_at = o.next_at, lease_owner = NULL, lease_expires_at = NULL,
       attempt_no = l.attempt_no - 1, updated_at = :now
  FROM unnest(CAST(:ids AS bigint[]), CAST(:next_at AS timestamptz[])) AS o(id, next_at)
 WHERE l.id = o.id;

-- reclamp_due_leads --
-- Move the first `take` leads to place (claims.Placing: longest waiting first, those a previous resume placed before those it parked) to their sending slots: each zone's lead k takes its zone's plan row whose [lo, hi) holds k, in its own zone's window; a lead beyond its zone's rows stays as it is; rows are found again by ctid (a heap fetch, not index descents).
WITH plan AS (
  SELECT * FROM unnest(CAST(:zones AS text[]), CAST(:lo AS bigint[]), CAST(:hi AS bigint[]),
                       CAST(:opens AS timestamptz[]), CAST(:closes AS timestamptz[]), CAST(:gaps AS float8[]))
         AS p(zone, lo, hi, opens, closes, gap)
), picked AS (
  SELECT ctid AS row_at, COALESCE(timezone, '') AS zone, id, next_action_at,
         CASE WHEN next_action_at < CAST(:prior AS timestamptz) THEN 1 ELSE 0 END AS parked
    FROM leads
   WHERE campaign_id = :campaign_id AND {workable} AND next_action_at <= :now
     AND lease_owner IS NULL AND awaiting IS NULL
     AND (CAST(:below AS timestamptz) IS NULL OR next_action_at < CAST(:below AS timestamptz))
   ORDER BY parked, next_action_at, id
   LIMIT CAST(:take AS bigint)
), due AS (
  SELECT row_at, zone, row_number() OVER (PARTITION BY zone ORDER BY parked, next_action_at, id) - 1 AS k
    FROM picked
)
UPDATE leads AS l
   SET next_action_at = CASE WHEN CAST(:randomize AS boolean)
                             THEN p.opens + (p.closes - p.opens) * random()
                             ELSE LEAST(p.opens + make_interval(secs => (d.k - p.lo) * p.gap),
                                        p.closes - interval '1 millisecond') END
  FROM due AS d JOIN plan AS p ON p.zone = d.zone AND d.k >= p.lo AND d.k < p.hi
 WHERE l.ctid = d.row_at;

-- fold_campaign_counts --
-- Replace a campaign's count delta rows by one row per metric (rows committed meanwhile stay as they are).
WITH gone AS (
  DELETE FROM campaign_counts WHERE campaign_id = :campaign_id RETURNING metric, n
)
INSERT INTO campaign_counts (campaign_id, metric, n)
SELECT :campaign_id, metric, sum(n) FROM gone GROUP BY metric HAVING sum(n) <> 0;

-- lock_contact_addresses --
-- Take, without waiting, the transaction lock of each address a claim would contact (claims.hold_to_contact_cap); returns the keys another transaction holds.
SELECT k FROM unnest(CAST(:keys AS int[])) AS k WHERE NOT pg_try_advisory_xact_lock(CAST(:space AS int), k);

-- opt_out_suppressed_leads --
-- Of a batch of leads just claimed (with the keyed hashes of their addresses), those with an address on the workspace's suppression list, by address or by the hash an erasure leaves, become opted_out, released, their attempt number given back; returns their ids.
UPDATE leads AS l
   SET state = 'opted_out', lease_owner = NULL, lease_expires_at = NULL, attempt_no = l.attempt_no - 1,
       updated_at = :now
  FROM unnest(CAST(:ids AS bigint[]), CAST(:phone_hashes AS text[]), CAST(:email_hashes AS text[]))
       AS h(id, phone_hash, email_hash)
 WHERE l.id = h.id
   AND (EXISTS (SELECT 1 FROM suppressions AS s WHERE s.workspace_id = :workspace_id AND s.phone = l.phone)
        OR EXISTS (SELECT 1 FROM suppressions AS s WHERE s.workspace_id = :workspace_id AND s.email = l.email)
        OR EXISTS (SELECT 1 FROM suppressions AS s WHERE s.workspace_id = :workspace_id
                      AND s.address_hash IN (h.phone_hash, h.email_hash)))
RETURNING l.id;

-- fold_step_stats --
-- Replace a campaign's statistics delta rows by one row per step, variant and quarter hour (rows committed meanwhile stay as they are).
WITH gone AS (
  DELETE FROM step_stats WHERE campaign_id = :campaign_id
  RETURNING step, variant, quarter, sent, delivered, read, failed, replied, opted_out
)
INSERT INTO step_stats (campaign_id, step, variant, quarter, sent, delivered, read, failed, replied, opted_out)
SELECT :campaign_id, step, variant, quarter, sum(sent), sum(delivered), sum(read), sum(failed), sum(replied),
       sum(opted_out)
  FROM gone GROUP BY step, variant, quarter
HAVING sum(sent) <> 0 OR sum(delivered) <> 0 OR sum(read) <> 0 OR sum(failed) <> 0 OR sum(replied) <> 0
    OR sum(opted_out) <> 0;
