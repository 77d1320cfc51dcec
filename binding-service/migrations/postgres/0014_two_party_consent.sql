-- Two-party consent (B5, national notice of 2026): a binding to an adult beneficiary may wait
-- in PENDING_CONSENT until the beneficiary accepts it (then ACTIVE) or declines it (DECLINED),
-- or until consent_expire_time (then EXPIRED). A binding waiting for consent is live: it counts
-- against duplicates and the cap, so the partial indexes over live bindings take it in. Each
-- event keeps how the channel verified the person acting (the consent's evidence).
ALTER TABLE bindings DROP CONSTRAINT bindings_state_check;
ALTER TABLE bindings ADD CONSTRAINT bindings_state_check CHECK (state IN
    ('PENDING_REVIEW', 'PENDING_CONSENT', 'ACTIVE', 'REJECTED', 'REVOKED', 'ENDED', 'DECLINED', 'EXPIRED'));
ALTER TABLE bindings ADD COLUMN consent_expire_time TIMESTAMPTZ;
ALTER TABLE binding_events ADD COLUMN verification TEXT;
DROP INDEX bindings_one_live_per_pair;
CREATE UNIQUE INDEX bindings_one_live_per_pair ON bindings (authorizer, beneficiary, kind)
    WHERE state IN ('PENDING_REVIEW', 'PENDING_CONSENT', 'ACTIVE');
DROP INDEX bindings_live_by_beneficiary;
CREATE INDEX bindings_live_by_beneficiary ON bindings (beneficiary, seq)
    WHERE state IN ('PENDING_REVIEW', 'PENDING_CONSENT', 'ACTIVE');
-- The requests the expiry pass looks for.
CREATE INDEX bindings_awaiting_consent ON bindings (consent_expire_time)
    WHERE state = 'PENDING_CONSENT';
