-- Admission of a start in one statement (issue 13, points 1 and 6). A start used to take its owner's
-- quota lock in one statement and count in the next (a new statement, so that it saw every start
-- committed before the lock was granted), then commit in a third round trip: the owner's concurrent
-- starts queued on the lock for three round trips each. In a VOLATILE PL/pgSQL function every query
-- takes its own snapshot (READ COMMITTED), so the lock and the counts after it fit in one call, and
-- that call can be part of the statement that writes the start: src/quotas/quotas.ts.
--
-- opsgraph_admit takes the owner's quota lock (held to the end of the transaction), then checks, in
-- this order, the unfinished operations that count, the starts of the last minute and the credit
-- balance, for `requested` more operations than the owner has besides the start's own rows (the
-- operation `started` and its batch items, whether or not the caller's snapshot sees them yet).
-- A refusal raises SQLSTATE OGQ01 with the facts as JSON in DETAIL, so the statement and its
-- transaction write nothing. Returns the owner's other unfinished operations (the fair-share rank).
--
-- The balance is read after the lock: every reservation takes the lock first and only reservations
-- lower a balance (grants and refunds raise it), so the balance this read sees is at most the one the
-- reservation's UPDATE then changes; the account's CHECK (balance >= 0) guards that reasoning.
CREATE FUNCTION opsgraph_admit(
  owner uuid, started uuid, requested int, max_active int, per_minute int, cost bigint
) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  active int;
  edge timestamptz;
  available bigint;
BEGIN
  -- The namespace and key of the quota lock every opsgraph version takes (src/quotas/quotas.ts).
  PERFORM pg_advisory_xact_lock(7341, hashtext(owner::text));
  SELECT count(*)::int INTO active FROM (
    SELECT 1 FROM "Operation"
     WHERE "ownerId" = owner AND status IN ('PENDING', 'PROCESSING') AND type <> 'batch'
       AND id <> started AND "batchId" IS DISTINCT FROM started
     LIMIT max_active + 1
  ) unfinished;
  IF active + requested > max_active THEN
    RAISE EXCEPTION 'quota exceeded' USING ERRCODE = 'OGQ01',
      DETAIL = json_build_object('refused', 'ACTIVE_OPERATIONS')::text;
  END IF;
  IF requested > per_minute THEN
    RAISE EXCEPTION 'quota exceeded' USING ERRCODE = 'OGQ01',
      DETAIL = json_build_object('refused', 'STARTS_PER_MINUTE')::text;
  END IF;
  -- The start that would be one past the limit with this one's: once it is a minute old, it fits.
  SELECT "createdAt" INTO edge FROM "Operation"
   WHERE "ownerId" = owner AND "createdAt" > now() - interval '1 minute' AND type <> 'batch'
     AND id <> started AND "batchId" IS DISTINCT FROM started
   ORDER BY "createdAt" DESC OFFSET per_minute - requested LIMIT 1;
  IF edge IS NOT NULL THEN
    RAISE EXCEPTION 'quota exceeded' USING ERRCODE = 'OGQ01',
      DETAIL = json_build_object('refused', 'STARTS_PER_MINUTE',
        'waitMs', ceil(extract(epoch FROM edge + interval '1 minute' - now()) * 1000))::text;
  END IF;
  SELECT balance INTO available FROM "CreditAccount" WHERE "userId" = owner;
  IF COALESCE(available, 0) < cost THEN
    RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'OGQ01',
      DETAIL = json_build_object('refused', 'CREDITS', 'required', cost, 'available', COALESCE(available, 0))::text;
  END IF;
  RETURN active;
END $$;
