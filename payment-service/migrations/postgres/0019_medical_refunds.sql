-- RefundMedicalExpensePayment: a hospital reverses a charge, whole or in part. The payment
-- keeps what its refunds have returned so far, never more than it paid; each refund is a
-- row naming its movement (the account parts back, in reverse order of drawing) and the
-- other-means part owed back. Append-only: only the sealed acting person may be rewritten
-- (re-encryption under a new key).
ALTER TABLE medical_payments ADD COLUMN refunded_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE medical_payments ADD CONSTRAINT medical_refunded_within_amount
    CHECK (refunded_fen >= 0 AND refunded_fen <= amount_fen);
CREATE TABLE medical_refunds (
    refund_id           TEXT PRIMARY KEY,
    payment_id          TEXT NOT NULL REFERENCES medical_payments (payment_id),
    request_id          TEXT NOT NULL,
    movement_id         TEXT UNIQUE REFERENCES movements (movement_id),
    amount_fen          BIGINT NOT NULL CHECK (amount_fen > 0),
    own_draws           TEXT NOT NULL,
    family_draws        TEXT NOT NULL,
    -- Owed back to the payer through the other means that paid it.
    other_fen           BIGINT NOT NULL CHECK (other_fen >= 0),
    -- What the payment had had refunded with this refund.
    refunded_total_fen  BIGINT NOT NULL CHECK (refunded_total_fen >= amount_fen),
    reason              TEXT NOT NULL,
    refund_time         TIMESTAMPTZ NOT NULL,
    business_date       DATE NOT NULL,
    caller              TEXT NOT NULL,
    acting_person       TEXT
);
CREATE INDEX medical_refunds_by_payment ON medical_refunds (payment_id, refunded_total_fen);
CREATE TRIGGER medical_refunds_no_change
    BEFORE UPDATE OF refund_id, payment_id, request_id, movement_id, amount_fen, own_draws, family_draws,
        other_fen, refunded_total_fen, reason, refund_time, business_date, caller OR DELETE ON medical_refunds
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
