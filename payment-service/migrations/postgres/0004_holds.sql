-- The authorization fence (P1): a family debit first reserves its amount as a hold, then
-- binding-service records the use, then the hold is posted as the debit. A hold that is
-- neither posted nor voided stops counting at expire_ms (milliseconds since the epoch on the
-- service's clock), so a crash between the steps never keeps money reserved for good.
CREATE TABLE holds (
    movement_id      TEXT PRIMARY KEY NOT NULL,
    holder           TEXT NOT NULL REFERENCES accounts (holder),
    -- The amounts reserved, per bucket, as the debit will take them.
    current_fen      BIGINT NOT NULL CHECK (current_fen >= 0),
    prior_fen        BIGINT NOT NULL CHECK (prior_fen >= 0),
    purpose          TEXT NOT NULL CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE')),
    request_id       TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('HELD', 'POSTED', 'VOIDED')),
    create_ms        BIGINT NOT NULL,
    expire_ms        BIGINT NOT NULL,
    -- When it was posted or voided.
    close_ms         BIGINT,
    -- The binding binding-service authorized the use under, once it did.
    binding_id       TEXT,
    binding_version  BIGINT,
    CHECK (current_fen + prior_fen > 0),
    CHECK (expire_ms > create_ms)
);
-- What a debit must leave untouched: an account's live holds.
CREATE INDEX holds_live_by_holder ON holds (holder, expire_ms) WHERE state = 'HELD';
-- Reconciliation of a binding's uses.
CREATE INDEX premium_by_binding ON premium_payments (binding_id) WHERE movement_id IS NOT NULL;
CREATE INDEX medical_by_binding ON medical_payments (binding_id) WHERE movement_id IS NOT NULL;
