-- Lists at scale (issue 13.4): a normal user's `operations` page includes other users' operations
-- on public collections. Reading them one collection at a time costs a range per public collection
-- (hundreds of ranges, thousands of rows sorted for a page of 50), so each operation carries a copy
-- of its collection's `isPublic` and one partial index orders exactly those rows by time
-- (src/operations/list.ts). The copy is kept by the two triggers below, in the transaction of the
-- write that changes it, whatever the writer (Prisma, raw SQL, COPY, a collection's deletion
-- setting `collectionId` to NULL): the visibility rule itself stays in src/auth/visibility.ts.
ALTER TABLE "Operation" ADD COLUMN "onPublicCollection" BOOLEAN NOT NULL DEFAULT false;

UPDATE "Operation" o SET "onPublicCollection" = true
  FROM "Collection" c WHERE c.id = o."collectionId" AND c."isPublic";

-- An operation's flag follows the collection it acts on, when it is written or re-pointed. A flip
-- of `isPublic` and the writes of operations on that collection are ordered by an advisory lock per
-- collection: writers take it shared (they never wait for each other, nor for other updates of the
-- collection row such as a running handler's), a flip takes it exclusive in its trigger below. A
-- write that comes first is committed before the flip's UPDATE of the operations runs (so that
-- UPDATE sees it); a write that comes after waits for the flip to commit and then reads its value
-- (each query of a PL/pgSQL function takes a fresh snapshot). So neither can commit a stale copy.
CREATE FUNCTION "Operation_on_public_collection"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW."collectionId" IS NULL THEN
    NEW."onPublicCollection" := false;
    RETURN NEW;
  END IF;
  PERFORM pg_advisory_xact_lock_shared(7342, hashtext(NEW."collectionId"::text));
  NEW."onPublicCollection" := coalesce(
    (SELECT c."isPublic" FROM "Collection" c WHERE c.id = NEW."collectionId"), false);
  RETURN NEW;
END $$;

-- Fires only when a flag can change: most operations act on no collection, and most updates are
-- status changes that leave both columns alone.
CREATE TRIGGER "Operation_on_public_collection_insert" BEFORE INSERT ON "Operation"
  FOR EACH ROW WHEN (NEW."collectionId" IS NOT NULL OR NEW."onPublicCollection")
  EXECUTE FUNCTION "Operation_on_public_collection"();
CREATE TRIGGER "Operation_on_public_collection_update" BEFORE UPDATE OF "collectionId", "onPublicCollection" ON "Operation"
  FOR EACH ROW WHEN (NEW."collectionId" IS DISTINCT FROM OLD."collectionId"
                     OR NEW."onPublicCollection" IS DISTINCT FROM OLD."onPublicCollection")
  EXECUTE FUNCTION "Operation_on_public_collection"();

-- A collection made public or private carries its operations along (rare: one UPDATE per flip).
CREATE FUNCTION "Collection_public_to_operations"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7342, hashtext(NEW.id::text));
  UPDATE "Operation" SET "onPublicCollection" = NEW."isPublic"
    WHERE "collectionId" = NEW.id AND "onPublicCollection" IS DISTINCT FROM NEW."isPublic";
  RETURN NULL;
END $$;

CREATE TRIGGER "Collection_public_to_operations" AFTER UPDATE OF "isPublic" ON "Collection"
  FOR EACH ROW WHEN (NEW."isPublic" IS DISTINCT FROM OLD."isPublic")
  EXECUTE FUNCTION "Collection_public_to_operations"();

-- Operations on public collections, newest first, carrying the list's filter columns.
CREATE INDEX "Operation_public_createdAt_id_idx" ON "Operation" ("createdAt" DESC, id DESC)
  INCLUDE (status, type, "collectionId", "batchId", "ownerId") WHERE "onPublicCollection";
