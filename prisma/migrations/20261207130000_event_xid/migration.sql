-- Resumable live lists (issue 11, point 4): each event records the id of the transaction that
-- wrote it, so `operationsUpdated` can replay exactly the events a snapshot did not see
-- (`NOT pg_visible_in_snapshot(xid, snapshot)`, bounded below by the snapshot's xmin through the
-- index) even when transactions commit out of order. See src/operations/live-cursor.ts.
--
-- Existing rows get 0, which every snapshot sees (they are older than any cursor); the column is
-- added with that constant default (no table rewrite), then new rows take the writing
-- transaction's id. The default costs nothing extra: a writing transaction already has its id.
ALTER TABLE "OperationEvent" ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE "OperationEvent" ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX "OperationEvent_xid_idx" ON "OperationEvent" (xid);
