-- Personal data at rest (PIPL): ID numbers are kept only sealed (AES-256-GCM, each value
-- naming its key version), and the ID-number columns rows are looked up and joined by
-- (accounts.holder, entries.holder, holds.holder, year_closings.holder, premium and
-- medical payments' parties) hold a keyed index (HMAC-SHA256 under a key of its own)
-- instead of the number. The *_sealed columns hold the values read back; acting persons
-- and idempotency's fingerprint and response are sealed in place. The service does this
-- in Rust, where the keys are: SQL never sees a key or a plain value.
ALTER TABLE accounts ADD COLUMN holder_sealed TEXT;
ALTER TABLE premium_payments ADD COLUMN payer_sealed TEXT;
ALTER TABLE premium_payments ADD COLUMN beneficiary_sealed TEXT;
ALTER TABLE medical_payments ADD COLUMN beneficiary_sealed TEXT;
ALTER TABLE medical_payments ADD COLUMN family_holder_sealed TEXT;
-- One check value per key version (0: the index key), so that a missing or wrong key
-- stops start-up instead of failing a read later.
CREATE TABLE vault_checks (
    version      BIGINT PRIMARY KEY,
    check_value  TEXT NOT NULL
);
