-- The checks that end a collection batch (issue 13, point 5), as functions a statement can call. A
-- batch of new or changed documents is one statement that ends with them (src/collections/store.ts,
-- writeBatch), its own transaction, one round trip; the next batch is sent on the same connection
-- before that one has answered (src/collections/work.ts, eachStatement).

-- Locks the operation row until the end of the transaction (a cancel waits for the commit; a
-- transaction after a cancel fails here) and raises SQLSTATE OG001 when the attempt whose claim is
-- `claim` no longer holds the operation (cancelled, ended, or taken over by a retry), so nothing
-- commits. The batch transactions of a reindex send it with their COMMIT (heldCheck), where it
-- replaces a DO block that PostgreSQL compiled again for every batch.
CREATE FUNCTION opsgraph_batch_held(operation uuid, claim uuid) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM 1 FROM "Operation" WHERE id = operation AND "claimId" = claim AND status = 'PROCESSING' FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the operation was cancelled or taken over' USING ERRCODE = 'OG001';
  END IF;
END $$;

-- Keeps the batches sent back to back on one connection in order: batch `sequence` (0, 1, 2, … on
-- that connection, which sets opsgraph.batches to 0 first) commits only when the one before it
-- did. Each commit moves the session's opsgraph.batches to sequence + 1; a batch that fails is
-- rolled back with that change, so the next one finds the old value here and raises SQLSTATE OG002
-- instead of committing after a gap. A batch sent on its own (sequence NULL) is not checked.
CREATE FUNCTION opsgraph_batch_in_order(sequence int) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF sequence IS NULL THEN
    RETURN;
  END IF;
  IF current_setting('opsgraph.batches', true) IS DISTINCT FROM sequence::text THEN
    RAISE EXCEPTION 'the batch before this one did not commit' USING ERRCODE = 'OG002';
  END IF;
  PERFORM set_config('opsgraph.batches', (sequence + 1)::text, false);
END $$;
