-- The usage record of family mutual aid (共济使用明细): one row per family debit (money of
-- an authorizer's account paid for a family member) and per refund of one, written in the
-- same transaction as its movement. Parties are keyed indexes, as everywhere; their sealed
-- numbers are read from the payment the row names. The position (use_id) orders listings
-- newest first. Append-only: only the parties' indexes may be rewritten (by the start-up
-- sealing of an earlier version's plain text).
CREATE TABLE family_uses (
    use_id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    movement_id       TEXT NOT NULL UNIQUE REFERENCES movements (movement_id),
    kind              TEXT NOT NULL CHECK (kind IN ('DEBIT', 'REFUND')),
    payment_id        TEXT NOT NULL,
    purpose           TEXT NOT NULL CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE')),
    authorizer        TEXT NOT NULL,
    beneficiary       TEXT NOT NULL,
    binding_id        TEXT NOT NULL,
    -- What left the authorizer's account (DEBIT) or came back to it (REFUND).
    amount_fen        BIGINT NOT NULL CHECK (amount_fen > 0),
    institution_code  TEXT,
    business_date     DATE NOT NULL,
    create_time       TIMESTAMPTZ NOT NULL
);
CREATE INDEX family_uses_by_authorizer ON family_uses (authorizer, use_id);
CREATE INDEX family_uses_by_beneficiary ON family_uses (beneficiary, use_id);
CREATE TRIGGER family_uses_no_change
    BEFORE UPDATE OF use_id, movement_id, kind, payment_id, purpose, binding_id, amount_fen,
        institution_code, business_date, create_time OR DELETE ON family_uses
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();

-- The family debits and refunds made before this record existed, in the order they were made.
INSERT INTO family_uses (movement_id, kind, payment_id, purpose, authorizer, beneficiary, binding_id,
    amount_fen, institution_code, business_date, create_time)
SELECT movement_id, kind, payment_id, purpose, authorizer, beneficiary, binding_id, amount_fen,
    institution_code, business_date, create_time
FROM (
    SELECT p.movement_id, 'DEBIT' AS kind, p.payment_id, 'PREMIUM' AS purpose, p.payer AS authorizer,
        p.beneficiary, p.binding_id, p.account_fen AS amount_fen, CAST(NULL AS TEXT) AS institution_code,
        m.business_date, m.create_time
    FROM premium_payments p JOIN movements m ON m.movement_id = p.movement_id
    WHERE p.account_fen > 0
    UNION ALL
    SELECT p.refund_movement_id, 'REFUND', p.payment_id, 'PREMIUM', p.payer, p.beneficiary, p.binding_id,
        (SELECT SUM(e.amount_fen) FROM entries e WHERE e.movement_id = p.refund_movement_id AND e.holder = p.payer),
        NULL, m.business_date, m.create_time
    FROM premium_payments p JOIN movements m ON m.movement_id = p.refund_movement_id
    UNION ALL
    SELECT d.movement_id, 'DEBIT', d.payment_id, 'MEDICAL_EXPENSE', d.family_holder, d.beneficiary, d.binding_id,
        -(SELECT SUM(e.amount_fen) FROM entries e WHERE e.movement_id = d.movement_id AND e.holder = d.family_holder),
        d.institution_code, m.business_date, m.create_time
    FROM medical_payments d JOIN movements m ON m.movement_id = d.movement_id
    WHERE d.family_holder IS NOT NULL AND d.family_draws <> ''
) u
WHERE amount_fen > 0
ORDER BY create_time, movement_id;
