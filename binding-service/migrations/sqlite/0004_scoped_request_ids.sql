-- Request IDs are scoped to their caller (the authenticated identity): the same ID from two
-- callers is two requests, and no caller can claim or probe another's. Rows written before
-- callers were authenticated keep the empty scope.
CREATE TABLE idempotency_scoped (
    scope        TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    response     BLOB NOT NULL,
    create_time  TEXT NOT NULL,
    PRIMARY KEY (scope, request_id)
);
INSERT INTO idempotency_scoped (scope, request_id, operation, fingerprint, response, create_time)
    SELECT '', request_id, operation, fingerprint, response, create_time FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_scoped RENAME TO idempotency;
