-- The cross-province family wallet (共济钱包, U4): transfers into the family mutual-aid wallet of
-- a relative insured in another province. A transfer is a family debit like a premium's: a
-- movement of purpose FAMILY_WALLET (settled daily like every movement; the provinces settle
-- monthly) and a family use, counted by the authorizer's limits. It waits for the receiving
-- province's confirmation until confirm_deadline; one not confirmed goes back (a refund
-- movement).
ALTER TABLE movements DROP CONSTRAINT movements_purpose_check;
ALTER TABLE movements ADD CONSTRAINT movements_purpose_check
    CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE', 'FAMILY_WALLET'));
ALTER TABLE holds DROP CONSTRAINT holds_purpose_check;
ALTER TABLE holds ADD CONSTRAINT holds_purpose_check
    CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE', 'FAMILY_WALLET'));
ALTER TABLE family_uses DROP CONSTRAINT family_uses_purpose_check;
ALTER TABLE family_uses ADD CONSTRAINT family_uses_purpose_check
    CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE', 'FAMILY_WALLET'));
CREATE TABLE wallet_transfers (
    transfer_id          TEXT PRIMARY KEY,
    request_id           TEXT NOT NULL,
    movement_id          TEXT NOT NULL UNIQUE REFERENCES movements (movement_id),
    -- Keyed indexes of the parties (lookups), and their sealed numbers.
    authorizer           TEXT NOT NULL,
    beneficiary          TEXT NOT NULL,
    authorizer_sealed    TEXT NOT NULL,
    beneficiary_sealed   TEXT NOT NULL,
    amount_fen           BIGINT NOT NULL CHECK (amount_fen > 0),
    draws                TEXT NOT NULL,
    destination          TEXT NOT NULL,
    binding_id           TEXT NOT NULL,
    binding_version      BIGINT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('PENDING', 'CONFIRMED', 'RETURNED')),
    create_time          TIMESTAMPTZ NOT NULL,
    business_date        DATE NOT NULL,
    confirm_deadline     TIMESTAMPTZ NOT NULL,
    return_movement_id   TEXT REFERENCES movements (movement_id),
    caller               TEXT NOT NULL,
    acting_person        TEXT
);
-- The authorizer's transfers of a day (the per-day count), and the pending ones by deadline.
CREATE INDEX wallet_transfers_by_authorizer_day ON wallet_transfers (authorizer, business_date);
CREATE INDEX wallet_transfers_pending ON wallet_transfers (confirm_deadline) WHERE state = 'PENDING';
