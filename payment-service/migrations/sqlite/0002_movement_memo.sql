-- Credits keep what the caller said they were for (CreditAccount's memo).
ALTER TABLE movements ADD COLUMN memo TEXT NOT NULL DEFAULT '';
