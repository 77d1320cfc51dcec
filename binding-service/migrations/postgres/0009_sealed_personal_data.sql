-- Personal data at rest (PIPL): ID numbers and names are kept only sealed (AES-256-GCM,
-- each value naming its key version), and ID-number columns that rows are looked up by
-- hold a keyed index (HMAC-SHA256 under a key of its own) instead of the number:
-- persons.id_number and bindings.authorizer/beneficiary hold the index, the *_sealed
-- columns and names the sealed values; idempotency keeps its fingerprint, response and
-- acting person sealed, as binding_events keeps its acting person. The service does this
-- in Rust, where the keys are: SQL never sees a key or a plain value.
ALTER TABLE persons ADD COLUMN id_sealed TEXT;
ALTER TABLE bindings ADD COLUMN authorizer_sealed TEXT;
ALTER TABLE bindings ADD COLUMN beneficiary_sealed TEXT;
-- One check value per key version (0: the index key), so that a missing or wrong key
-- stops start-up instead of failing a read later.
CREATE TABLE vault_checks (
    version      BIGINT PRIMARY KEY,
    check_value  TEXT NOT NULL
);
