-- The registry, bindings, their append-only audit trail, and idempotency records.
CREATE TABLE persons (
    id_number        TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    employee_region  TEXT,
    employee_status  TEXT CHECK (employee_status IN ('NORMAL', 'SUSPENDED', 'TERMINATED')),
    resident_region  TEXT,
    resident_status  TEXT CHECK (resident_status IN ('NORMAL', 'SUSPENDED', 'TERMINATED')),
    update_time      TIMESTAMPTZ NOT NULL
);

CREATE TABLE bindings (
    binding_id        TEXT PRIMARY KEY,
    authorizer        TEXT NOT NULL,
    beneficiary       TEXT NOT NULL,
    beneficiary_name  TEXT NOT NULL,
    relationship      TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('FUNDS_SHARING', 'PROXY')),
    state             TEXT NOT NULL CHECK (state IN ('PENDING_REVIEW', 'ACTIVE', 'REJECTED', 'REVOKED', 'ENDED')),
    version           BIGINT NOT NULL CHECK (version > 0),
    create_time       TIMESTAMPTZ NOT NULL,
    update_time       TIMESTAMPTZ NOT NULL,
    state_reason      TEXT NOT NULL,
    seq               BIGINT NOT NULL
);
-- At most one live binding of a kind per pair: the database decides races, not a check-then-insert.
CREATE UNIQUE INDEX bindings_one_live_per_pair ON bindings (authorizer, beneficiary, kind)
    WHERE state IN ('PENDING_REVIEW', 'ACTIVE');
CREATE UNIQUE INDEX bindings_seq ON bindings (seq);
CREATE INDEX bindings_by_authorizer ON bindings (authorizer, seq);
CREATE INDEX bindings_by_beneficiary ON bindings (beneficiary, seq);

CREATE TABLE binding_events (
    sequence         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    binding_id       TEXT NOT NULL REFERENCES bindings (binding_id),
    from_state       TEXT,
    to_state         TEXT NOT NULL,
    actor            TEXT NOT NULL,
    reason           TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    event_time       TIMESTAMPTZ NOT NULL,
    binding_version  BIGINT NOT NULL
);
CREATE INDEX binding_events_by_binding ON binding_events (binding_id, sequence);
-- The audit trail is append-only.
CREATE FUNCTION binding_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'binding_events is append-only'; END $$;
CREATE TRIGGER binding_events_no_change BEFORE UPDATE OR DELETE ON binding_events
    FOR EACH ROW EXECUTE FUNCTION binding_events_append_only();

CREATE TABLE idempotency (
    request_id   TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    response     BYTEA NOT NULL,
    create_time  TIMESTAMPTZ NOT NULL
);
