-- The family debits each binding authorized (P1), recorded with the check under the lock a
-- revocation takes: a use exists only for a debit authorized while its binding was ACTIVE.
CREATE TABLE binding_uses (
    movement_id      TEXT PRIMARY KEY NOT NULL,
    seq              INTEGER NOT NULL UNIQUE,
    binding_id       TEXT NOT NULL REFERENCES bindings (binding_id),
    binding_version  INTEGER NOT NULL,
    purpose          TEXT NOT NULL,
    amount_fen       INTEGER NOT NULL CHECK (amount_fen > 0),
    use_time         TEXT NOT NULL
);
CREATE INDEX binding_uses_by_binding ON binding_uses (binding_id, seq);
CREATE TRIGGER binding_uses_no_update BEFORE UPDATE ON binding_uses
BEGIN SELECT RAISE(ABORT, 'binding_uses are append-only'); END;
CREATE TRIGGER binding_uses_no_delete BEFORE DELETE ON binding_uses
BEGIN SELECT RAISE(ABORT, 'binding_uses are append-only'); END;
