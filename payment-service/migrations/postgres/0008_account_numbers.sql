-- Accounts numbered in the order they were opened, so VerifyLedger pages through them by
-- number: a page token then never carries a holder's ID number. SQLite has its row ID.
ALTER TABLE accounts ADD COLUMN account_no BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX accounts_by_number ON accounts (account_no);
