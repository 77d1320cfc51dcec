-- The family debits each binding authorized (P1), recorded with the check under the lock a
-- revocation takes: a use exists only for a debit authorized while its binding was ACTIVE.
CREATE TABLE binding_uses (
    movement_id      TEXT PRIMARY KEY NOT NULL,
    seq              BIGINT NOT NULL UNIQUE,
    binding_id       TEXT NOT NULL REFERENCES bindings (binding_id),
    binding_version  BIGINT NOT NULL,
    purpose          TEXT NOT NULL,
    amount_fen       BIGINT NOT NULL CHECK (amount_fen > 0),
    use_time         TIMESTAMPTZ NOT NULL
);
CREATE INDEX binding_uses_by_binding ON binding_uses (binding_id, seq);
CREATE FUNCTION binding_uses_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'binding_uses are append-only'; END $$;
CREATE TRIGGER binding_uses_no_change BEFORE UPDATE OR DELETE ON binding_uses
    FOR EACH ROW EXECUTE FUNCTION binding_uses_append_only();
