-- The cross-province family wallet (共济钱包, U4): transfers into the family mutual-aid wallet of
-- a relative insured in another province. A transfer is a family debit like a premium's: a
-- movement of purpose FAMILY_WALLET (settled daily like every movement; the provinces settle
-- monthly) and a family use, counted by the authorizer's limits. It waits for the receiving
-- province's confirmation until confirm_deadline; one not confirmed goes back (a refund
-- movement).
--
-- SQLite cannot widen a CHECK in place: movements, holds and family_uses are rebuilt. Their rows are
-- set aside, the tables dropped and created again under their names (row IDs kept: they are
-- the written order), the rows put back; the foreign keys that name them are checked at
-- commit, once every row is back.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE movements_set_aside AS SELECT rowid AS row_no, movement_id, kind, request_id, create_time,
    business_date, purpose, destination, memo, caller, acting_person, feed_position FROM movements;
DROP TABLE movements;
CREATE TABLE movements (
    movement_id    TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    create_time    TEXT NOT NULL,
    business_date  TEXT NOT NULL,
    purpose        TEXT CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE', 'FAMILY_WALLET')),
    destination    TEXT,
    memo           TEXT NOT NULL DEFAULT '',
    caller         TEXT NOT NULL DEFAULT '',
    acting_person  TEXT,
    feed_position  INTEGER
);
INSERT INTO movements (rowid, movement_id, kind, request_id, create_time, business_date, purpose,
    destination, memo, caller, acting_person, feed_position)
SELECT row_no, movement_id, kind, request_id, create_time, business_date, purpose, destination, memo,
    caller, acting_person, feed_position FROM movements_set_aside ORDER BY row_no;
DROP TABLE movements_set_aside;
CREATE INDEX movements_by_day ON movements (business_date);
CREATE UNIQUE INDEX movements_by_feed_position ON movements (feed_position);
CREATE INDEX movements_unsequenced ON movements (create_time) WHERE feed_position IS NULL;
CREATE TRIGGER movements_no_update
    BEFORE UPDATE OF movement_id, kind, request_id, create_time, business_date, purpose,
        destination, memo, caller ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
CREATE TRIGGER movements_no_delete BEFORE DELETE ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
CREATE TRIGGER movements_feed_position_once
    BEFORE UPDATE OF feed_position ON movements
    WHEN OLD.feed_position IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a feed position never changes'); END;

CREATE TABLE holds_set_aside AS SELECT movement_id, holder, current_fen, prior_fen, purpose, request_id,
    state, create_ms, expire_ms, close_ms, binding_id, binding_version FROM holds;
DROP TABLE holds;
CREATE TABLE holds (
    movement_id      TEXT PRIMARY KEY NOT NULL,
    holder           TEXT NOT NULL REFERENCES accounts (holder),
    current_fen      INTEGER NOT NULL CHECK (current_fen >= 0),
    prior_fen        INTEGER NOT NULL CHECK (prior_fen >= 0),
    purpose          TEXT NOT NULL CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE', 'FAMILY_WALLET')),
    request_id       TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('HELD', 'POSTED', 'VOIDED')),
    create_ms        INTEGER NOT NULL,
    expire_ms        INTEGER NOT NULL,
    close_ms         INTEGER,
    binding_id       TEXT,
    binding_version  INTEGER,
    CHECK (current_fen + prior_fen > 0),
    CHECK (expire_ms > create_ms)
);
INSERT INTO holds (movement_id, holder, current_fen, prior_fen, purpose, request_id, state, create_ms,
    expire_ms, close_ms, binding_id, binding_version)
SELECT movement_id, holder, current_fen, prior_fen, purpose, request_id, state, create_ms, expire_ms,
    close_ms, binding_id, binding_version FROM holds_set_aside;
DROP TABLE holds_set_aside;
CREATE INDEX holds_live_by_holder ON holds (holder, expire_ms) WHERE state = 'HELD';
CREATE INDEX holds_live_by_binding ON holds (binding_id) WHERE state = 'HELD';

CREATE TABLE family_uses_set_aside AS SELECT * FROM family_uses;
DROP TABLE family_uses;
CREATE TABLE family_uses (
    use_id            INTEGER PRIMARY KEY AUTOINCREMENT,
    movement_id       TEXT NOT NULL UNIQUE REFERENCES movements (movement_id),
    kind              TEXT NOT NULL CHECK (kind IN ('DEBIT', 'REFUND')),
    payment_id        TEXT NOT NULL,
    purpose           TEXT NOT NULL CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE', 'FAMILY_WALLET')),
    authorizer        TEXT NOT NULL,
    beneficiary       TEXT NOT NULL,
    binding_id        TEXT NOT NULL,
    amount_fen        INTEGER NOT NULL CHECK (amount_fen > 0),
    institution_code  TEXT,
    business_date     TEXT NOT NULL,
    create_time       TEXT NOT NULL
);
INSERT INTO family_uses (use_id, movement_id, kind, payment_id, purpose, authorizer, beneficiary,
    binding_id, amount_fen, institution_code, business_date, create_time)
SELECT use_id, movement_id, kind, payment_id, purpose, authorizer, beneficiary, binding_id, amount_fen,
    institution_code, business_date, create_time FROM family_uses_set_aside ORDER BY use_id;
DROP TABLE family_uses_set_aside;
CREATE INDEX family_uses_by_authorizer ON family_uses (authorizer, use_id);
CREATE INDEX family_uses_by_beneficiary ON family_uses (beneficiary, use_id);
CREATE INDEX family_uses_by_binding ON family_uses (binding_id, business_date);
CREATE TRIGGER family_uses_no_update
    BEFORE UPDATE OF use_id, movement_id, kind, payment_id, purpose, binding_id, amount_fen,
        institution_code, business_date, create_time ON family_uses
BEGIN SELECT RAISE(ABORT, 'family_uses are append-only'); END;
CREATE TRIGGER family_uses_no_delete BEFORE DELETE ON family_uses
BEGIN SELECT RAISE(ABORT, 'family_uses are append-only'); END;

CREATE TABLE wallet_transfers (
    transfer_id          TEXT PRIMARY KEY NOT NULL,
    request_id           TEXT NOT NULL,
    movement_id          TEXT NOT NULL UNIQUE REFERENCES movements (movement_id),
    authorizer           TEXT NOT NULL,
    beneficiary          TEXT NOT NULL,
    authorizer_sealed    TEXT NOT NULL,
    beneficiary_sealed   TEXT NOT NULL,
    amount_fen           INTEGER NOT NULL CHECK (amount_fen > 0),
    draws                TEXT NOT NULL,
    destination          TEXT NOT NULL,
    binding_id           TEXT NOT NULL,
    binding_version      INTEGER NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('PENDING', 'CONFIRMED', 'RETURNED')),
    create_time          TEXT NOT NULL,
    business_date        TEXT NOT NULL,
    confirm_deadline     TEXT NOT NULL,
    return_movement_id   TEXT REFERENCES movements (movement_id),
    caller               TEXT NOT NULL,
    acting_person        TEXT
);
CREATE INDEX wallet_transfers_by_authorizer_day ON wallet_transfers (authorizer, business_date);
CREATE INDEX wallet_transfers_pending ON wallet_transfers (confirm_deadline) WHERE state = 'PENDING';
