-- The family wallet's monthly inter-province statement (U4): made once every day of the month
-- is settled (so the month is sealed), from the days' settlement lines of purpose FAMILY_WALLET,
-- per destination province, with a digest a second run reproduces. Append-only.
CREATE TABLE wallet_statements (
    month        DATE PRIMARY KEY,
    digest       TEXT NOT NULL,
    settle_time  TIMESTAMPTZ NOT NULL
);
CREATE TABLE wallet_statement_lines (
    month            DATE NOT NULL REFERENCES wallet_statements (month),
    destination      TEXT NOT NULL,
    transferred_fen  BIGINT NOT NULL,
    returned_fen     BIGINT NOT NULL,
    transfer_count   BIGINT NOT NULL,
    return_count     BIGINT NOT NULL,
    PRIMARY KEY (month, destination)
);
CREATE TRIGGER wallet_statements_no_change BEFORE UPDATE OR DELETE ON wallet_statements
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
CREATE TRIGGER wallet_statement_lines_no_change BEFORE UPDATE OR DELETE ON wallet_statement_lines
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
