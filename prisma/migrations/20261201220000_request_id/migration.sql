-- Operator logs (issue 12): the id of the request that started an operation, so the worker's log
-- lines for it carry the same requestId as the API's.

-- AlterTable
ALTER TABLE "Operation" ADD COLUMN "requestId" TEXT;
