-- The family wallet's monthly inter-province statement (U4): made once every day of the month
-- is settled (so the month is sealed), from the days' settlement lines of purpose FAMILY_WALLET,
-- per destination province, with a digest a second run reproduces. Append-only.
CREATE TABLE wallet_statements (
    month        TEXT PRIMARY KEY NOT NULL,
    digest       TEXT NOT NULL,
    settle_time  TEXT NOT NULL
);
CREATE TABLE wallet_statement_lines (
    month            TEXT NOT NULL REFERENCES wallet_statements (month),
    destination      TEXT NOT NULL,
    transferred_fen  INTEGER NOT NULL,
    returned_fen     INTEGER NOT NULL,
    transfer_count   INTEGER NOT NULL,
    return_count     INTEGER NOT NULL,
    PRIMARY KEY (month, destination)
);
CREATE TRIGGER wallet_statements_no_update BEFORE UPDATE ON wallet_statements
BEGIN SELECT RAISE(ABORT, 'wallet_statements are append-only'); END;
CREATE TRIGGER wallet_statements_no_delete BEFORE DELETE ON wallet_statements
BEGIN SELECT RAISE(ABORT, 'wallet_statements are append-only'); END;
CREATE TRIGGER wallet_statement_lines_no_update BEFORE UPDATE ON wallet_statement_lines
BEGIN SELECT RAISE(ABORT, 'wallet_statement_lines are append-only'); END;
CREATE TRIGGER wallet_statement_lines_no_delete BEFORE DELETE ON wallet_statement_lines
BEGIN SELECT RAISE(ABORT, 'wallet_statement_lines are append-only'); END;
