-- Personal accounts, the double-entry ledger, premium payments and idempotency records.
CREATE TABLE accounts (
    holder       TEXT PRIMARY KEY,
    region       TEXT NOT NULL,
    -- Caches of the sums of the holder's entries per bucket, kept in the same transaction.
    current_fen  BIGINT NOT NULL CHECK (current_fen >= 0),
    prior_fen    BIGINT NOT NULL CHECK (prior_fen >= 0),
    open_time    TIMESTAMPTZ NOT NULL
);

CREATE TABLE movements (
    movement_id    TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    create_time    TIMESTAMPTZ NOT NULL,
    business_date  DATE NOT NULL,
    -- What it settles as (PREMIUM, MEDICAL_EXPENSE) and where the money goes; NULL for
    -- movements inside the accounts (credits come from the contribution fund, year closings).
    purpose        TEXT CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE')),
    destination    TEXT
);
CREATE INDEX movements_by_day ON movements (business_date);

-- One row per posting; the postings of a movement sum to zero. Append-only.
CREATE TABLE entries (
    entry_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    movement_id    TEXT NOT NULL REFERENCES movements (movement_id),
    holder         TEXT REFERENCES accounts (holder),
    bucket         TEXT CHECK (bucket IN ('CURRENT_YEAR', 'PRIOR_YEARS')),
    fund           TEXT,
    region         TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL,
    CHECK ((holder IS NOT NULL AND bucket IS NOT NULL AND fund IS NULL)
        OR (holder IS NULL AND bucket IS NULL AND fund IS NOT NULL))
);
CREATE INDEX entries_by_holder ON entries (holder, entry_id);
CREATE INDEX entries_by_movement ON entries (movement_id);
CREATE FUNCTION entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'entries are append-only'; END $$;
CREATE TRIGGER entries_no_change BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_append_only();

CREATE SEQUENCE premium_payments_seq;
CREATE TABLE premium_payments (
    payment_id         TEXT PRIMARY KEY,
    request_id         TEXT NOT NULL,
    movement_id        TEXT REFERENCES movements (movement_id),
    payer              TEXT NOT NULL,
    beneficiary        TEXT NOT NULL,
    coverage_year      INTEGER NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('PAID', 'REFUNDED')),
    premium_fen        BIGINT NOT NULL CHECK (premium_fen >= 0),
    account_fen        BIGINT NOT NULL CHECK (account_fen >= 0),
    other_fen          BIGINT NOT NULL CHECK (other_fen >= 0),
    draws              TEXT NOT NULL,
    other_channel      TEXT,
    other_reference    TEXT,
    binding_id         TEXT NOT NULL,
    binding_version    BIGINT NOT NULL,
    payer_region       TEXT NOT NULL,
    beneficiary_region TEXT NOT NULL,
    back_payment       BOOLEAN NOT NULL,
    in_window          BOOLEAN NOT NULL,
    window_start       DATE NOT NULL,
    window_end         DATE NOT NULL,
    waiting_months     INTEGER NOT NULL,
    benefit_start      DATE,
    benefit_end        DATE,
    payment_date       DATE NOT NULL,
    pay_time           TIMESTAMPTZ NOT NULL,
    refund_time        TIMESTAMPTZ,
    refund_reason      TEXT,
    refund_movement_id TEXT REFERENCES movements (movement_id),
    -- Position for stable paging, newest first.
    seq                BIGINT NOT NULL,
    CHECK (premium_fen = account_fen + other_fen)
);
-- One resident premium per beneficiary and year, whoever pays (P5).
CREATE UNIQUE INDEX premium_one_paid_per_year ON premium_payments (beneficiary, coverage_year) WHERE state = 'PAID';
CREATE UNIQUE INDEX premium_by_seq ON premium_payments (seq);
CREATE INDEX premium_by_payer ON premium_payments (payer, seq);
CREATE INDEX premium_by_beneficiary ON premium_payments (beneficiary, seq);

-- The other-means part of a refunded premium, owed back through its channel (P9).
CREATE TABLE other_means_refunds (
    payment_id   TEXT PRIMARY KEY REFERENCES premium_payments (payment_id),
    channel      TEXT NOT NULL,
    reference    TEXT NOT NULL,
    amount_fen   BIGINT NOT NULL CHECK (amount_fen > 0),
    create_time  TIMESTAMPTZ NOT NULL
);

-- One closing per account and year: CloseYear is idempotent per account and year.
CREATE TABLE year_closings (
    holder       TEXT NOT NULL REFERENCES accounts (holder),
    year         INTEGER NOT NULL,
    moved_fen    BIGINT NOT NULL CHECK (moved_fen >= 0),
    movement_id  TEXT REFERENCES movements (movement_id),
    create_time  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (holder, year)
);

CREATE TABLE medical_payments (
    payment_id        TEXT PRIMARY KEY,
    request_id        TEXT NOT NULL,
    movement_id       TEXT REFERENCES movements (movement_id),
    beneficiary       TEXT NOT NULL,
    family_holder     TEXT,
    institution_code  TEXT NOT NULL,
    institution_kind  TEXT NOT NULL CHECK (institution_kind IN ('HOSPITAL', 'PHARMACY')),
    amount_fen        BIGINT NOT NULL CHECK (amount_fen > 0),
    own_draws         TEXT NOT NULL,
    family_draws      TEXT NOT NULL,
    other_fen         BIGINT NOT NULL CHECK (other_fen >= 0),
    binding_id        TEXT NOT NULL,
    binding_version   BIGINT NOT NULL,
    destination       TEXT,
    pay_time          TIMESTAMPTZ NOT NULL,
    business_date     DATE NOT NULL
);

-- A business day is settled once.
CREATE TABLE settlements (
    business_date   DATE PRIMARY KEY,
    movement_count  BIGINT NOT NULL,
    digest          TEXT NOT NULL,
    settle_time     TIMESTAMPTZ NOT NULL
);
CREATE TABLE settlement_lines (
    business_date       DATE NOT NULL REFERENCES settlements (business_date),
    source_region       TEXT NOT NULL,
    destination_region  TEXT NOT NULL,
    purpose             TEXT NOT NULL,
    gross_fen           BIGINT NOT NULL,
    refunded_fen        BIGINT NOT NULL,
    payment_count       BIGINT NOT NULL,
    refund_count        BIGINT NOT NULL,
    PRIMARY KEY (business_date, source_region, destination_region, purpose)
);
CREATE TABLE settled_movements (
    movement_id    TEXT PRIMARY KEY REFERENCES movements (movement_id),
    business_date  DATE NOT NULL REFERENCES settlements (business_date)
);

CREATE TABLE idempotency (
    request_id   TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    response     BYTEA NOT NULL,
    create_time  TIMESTAMPTZ NOT NULL
);
