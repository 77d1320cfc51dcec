-- Request IDs are scoped to their caller (the authenticated identity): the same ID from two
-- callers is two requests, and no caller can claim or probe another's. Rows written before
-- callers were authenticated keep the empty scope.
ALTER TABLE idempotency ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency DROP CONSTRAINT idempotency_pkey;
ALTER TABLE idempotency ADD PRIMARY KEY (scope, request_id);
ALTER TABLE idempotency ALTER COLUMN scope DROP DEFAULT;
