-- Personal accounts, the double-entry ledger, premium payments and idempotency records.
CREATE TABLE accounts (
    holder       TEXT PRIMARY KEY NOT NULL,
    region       TEXT NOT NULL,
    -- Caches of the sums of the holder's entries per bucket, kept in the same transaction.
    current_fen  INTEGER NOT NULL CHECK (current_fen >= 0),
    prior_fen    INTEGER NOT NULL CHECK (prior_fen >= 0),
    open_time    TEXT NOT NULL
);

CREATE TABLE movements (
    movement_id    TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    create_time    TEXT NOT NULL,
    business_date  TEXT NOT NULL,
    -- What it settles as (PREMIUM, MEDICAL_EXPENSE) and where the money goes; NULL for
    -- movements inside the accounts (credits come from the contribution fund, year closings).
    purpose        TEXT CHECK (purpose IN ('PREMIUM', 'MEDICAL_EXPENSE')),
    destination    TEXT
);
CREATE INDEX movements_by_day ON movements (business_date);

-- One row per posting; the postings of a movement sum to zero. Append-only.
CREATE TABLE entries (
    entry_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    movement_id    TEXT NOT NULL REFERENCES movements (movement_id),
    holder         TEXT REFERENCES accounts (holder),
    bucket         TEXT CHECK (bucket IN ('CURRENT_YEAR', 'PRIOR_YEARS')),
    fund           TEXT,
    region         TEXT NOT NULL,
    amount_fen     INTEGER NOT NULL,
    CHECK ((holder IS NOT NULL AND bucket IS NOT NULL AND fund IS NULL)
        OR (holder IS NULL AND bucket IS NULL AND fund IS NOT NULL))
);
CREATE INDEX entries_by_holder ON entries (holder, entry_id);
CREATE INDEX entries_by_movement ON entries (movement_id);
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;

CREATE TABLE premium_payments (
    payment_id         TEXT PRIMARY KEY NOT NULL,
    request_id         TEXT NOT NULL,
    movement_id        TEXT REFERENCES movements (movement_id),
    payer              TEXT NOT NULL,
    beneficiary        TEXT NOT NULL,
    coverage_year      INTEGER NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('PAID', 'REFUNDED')),
    premium_fen        INTEGER NOT NULL CHECK (premium_fen >= 0),
    account_fen        INTEGER NOT NULL CHECK (account_fen >= 0),
    other_fen          INTEGER NOT NULL CHECK (other_fen >= 0),
    draws              TEXT NOT NULL,
    other_channel      TEXT,
    other_reference    TEXT,
    binding_id         TEXT NOT NULL,
    binding_version    INTEGER NOT NULL,
    payer_region       TEXT NOT NULL,
    beneficiary_region TEXT NOT NULL,
    back_payment       INTEGER NOT NULL,
    in_window          INTEGER NOT NULL,
    window_start       TEXT NOT NULL,
    window_end         TEXT NOT NULL,
    waiting_months     INTEGER NOT NULL,
    benefit_start      TEXT,
    benefit_end        TEXT,
    payment_date       TEXT NOT NULL,
    pay_time           TEXT NOT NULL,
    refund_time        TEXT,
    refund_reason      TEXT,
    refund_movement_id TEXT REFERENCES movements (movement_id),
    -- Position for stable paging, newest first.
    seq                INTEGER NOT NULL,
    CHECK (premium_fen = account_fen + other_fen)
);
-- One resident premium per beneficiary and year, whoever pays (P5).
CREATE UNIQUE INDEX premium_one_paid_per_year ON premium_payments (beneficiary, coverage_year) WHERE state = 'PAID';
CREATE UNIQUE INDEX premium_by_seq ON premium_payments (seq);
CREATE INDEX premium_by_payer ON premium_payments (payer, seq);
CREATE INDEX premium_by_beneficiary ON premium_payments (beneficiary, seq);

-- The other-means part of a refunded premium, owed back through its channel (P9).
CREATE TABLE other_means_refunds (
    payment_id   TEXT PRIMARY KEY NOT NULL REFERENCES premium_payments (payment_id),
    channel      TEXT NOT NULL,
    reference    TEXT NOT NULL,
    amount_fen   INTEGER NOT NULL CHECK (amount_fen > 0),
    create_time  TEXT NOT NULL
);

-- One closing per account and year: CloseYear is idempotent per account and year.
CREATE TABLE year_closings (
    holder       TEXT NOT NULL REFERENCES accounts (holder),
    year         INTEGER NOT NULL,
    moved_fen    INTEGER NOT NULL CHECK (moved_fen >= 0),
    movement_id  TEXT REFERENCES movements (movement_id),
    create_time  TEXT NOT NULL,
    PRIMARY KEY (holder, year)
);

CREATE TABLE medical_payments (
    payment_id        TEXT PRIMARY KEY NOT NULL,
    request_id        TEXT NOT NULL,
    movement_id       TEXT REFERENCES movements (movement_id),
    beneficiary       TEXT NOT NULL,
    family_holder     TEXT,
    institution_code  TEXT NOT NULL,
    institution_kind  TEXT NOT NULL CHECK (institution_kind IN ('HOSPITAL', 'PHARMACY')),
    amount_fen        INTEGER NOT NULL CHECK (amount_fen > 0),
    own_draws         TEXT NOT NULL,
    family_draws      TEXT NOT NULL,
    other_fen         INTEGER NOT NULL CHECK (other_fen >= 0),
    binding_id        TEXT NOT NULL,
    binding_version   INTEGER NOT NULL,
    destination       TEXT,
    pay_time          TEXT NOT NULL,
    business_date     TEXT NOT NULL
);

-- A business day is settled once.
CREATE TABLE settlements (
    business_date   TEXT PRIMARY KEY NOT NULL,
    movement_count  INTEGER NOT NULL,
    digest          TEXT NOT NULL,
    settle_time     TEXT NOT NULL
);
CREATE TABLE settlement_lines (
    business_date       TEXT NOT NULL REFERENCES settlements (business_date),
    source_region       TEXT NOT NULL,
    destination_region  TEXT NOT NULL,
    purpose             TEXT NOT NULL,
    gross_fen           INTEGER NOT NULL,
    refunded_fen        INTEGER NOT NULL,
    payment_count       INTEGER NOT NULL,
    refund_count        INTEGER NOT NULL,
    PRIMARY KEY (business_date, source_region, destination_region, purpose)
);
CREATE TABLE settled_movements (
    movement_id    TEXT PRIMARY KEY NOT NULL REFERENCES movements (movement_id),
    business_date  TEXT NOT NULL REFERENCES settlements (business_date)
);

CREATE TABLE idempotency (
    request_id   TEXT PRIMARY KEY NOT NULL,
    operation    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    response     BLOB NOT NULL,
    create_time  TEXT NOT NULL
);
