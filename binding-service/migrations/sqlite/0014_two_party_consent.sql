-- Two-party consent (B5, national notice of 2026): a binding to an adult beneficiary may wait
-- in PENDING_CONSENT until the beneficiary accepts it (then ACTIVE) or declines it (DECLINED),
-- or until consent_expire_time (then EXPIRED). A binding waiting for consent is live: it counts
-- against duplicates and the cap, so the partial indexes over live bindings take it in. Each
-- event keeps how the channel verified the person acting (the consent's evidence).
--
-- SQLite cannot change a CHECK in place: the table is rebuilt. The events and uses refer to
-- it by name, so its rows are set aside, the old table dropped and the new one created under
-- its name; its foreign keys are checked at commit, once every binding is back (re-inserting a
-- parent row settles the deferred checks of the child rows that name it).
PRAGMA defer_foreign_keys = ON;
CREATE TABLE bindings_set_aside AS SELECT binding_id, authorizer, beneficiary, beneficiary_name,
    relationship, kind, state, version, create_time, update_time, state_reason, seq,
    authorizer_sealed, beneficiary_sealed, limits FROM bindings;
DROP TABLE bindings;
CREATE TABLE bindings (
    binding_id           TEXT PRIMARY KEY NOT NULL,
    authorizer           TEXT NOT NULL,
    beneficiary          TEXT NOT NULL,
    beneficiary_name     TEXT NOT NULL,
    relationship         TEXT NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('FUNDS_SHARING', 'PROXY')),
    state                TEXT NOT NULL CHECK (state IN ('PENDING_REVIEW', 'PENDING_CONSENT', 'ACTIVE',
                             'REJECTED', 'REVOKED', 'ENDED', 'DECLINED', 'EXPIRED')),
    version              INTEGER NOT NULL CHECK (version > 0),
    create_time          TEXT NOT NULL,
    update_time          TEXT NOT NULL,
    state_reason         TEXT NOT NULL,
    seq                  INTEGER NOT NULL,
    authorizer_sealed    TEXT,
    beneficiary_sealed   TEXT,
    limits               TEXT NOT NULL DEFAULT '',
    consent_expire_time  TEXT
);
INSERT INTO bindings (binding_id, authorizer, beneficiary, beneficiary_name, relationship, kind, state,
    version, create_time, update_time, state_reason, seq, authorizer_sealed, beneficiary_sealed, limits)
SELECT binding_id, authorizer, beneficiary, beneficiary_name, relationship, kind, state,
    version, create_time, update_time, state_reason, seq, authorizer_sealed, beneficiary_sealed, limits
FROM bindings_set_aside;
DROP TABLE bindings_set_aside;
CREATE UNIQUE INDEX bindings_one_live_per_pair ON bindings (authorizer, beneficiary, kind)
    WHERE state IN ('PENDING_REVIEW', 'PENDING_CONSENT', 'ACTIVE');
CREATE UNIQUE INDEX bindings_seq ON bindings (seq);
CREATE INDEX bindings_by_authorizer ON bindings (authorizer, seq);
CREATE INDEX bindings_by_beneficiary ON bindings (beneficiary, seq);
CREATE INDEX bindings_live_by_beneficiary ON bindings (beneficiary, seq)
    WHERE state IN ('PENDING_REVIEW', 'PENDING_CONSENT', 'ACTIVE');
-- The requests the expiry pass looks for.
CREATE INDEX bindings_awaiting_consent ON bindings (consent_expire_time)
    WHERE state = 'PENDING_CONSENT';
ALTER TABLE binding_events ADD COLUMN verification TEXT;
