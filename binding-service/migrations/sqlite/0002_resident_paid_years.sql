-- Resident-insurance years already paid through any channel, as the core system syncs them (P5):
-- ascending, comma-separated ("2023,2024").
ALTER TABLE persons ADD COLUMN resident_paid_years TEXT NOT NULL DEFAULT '';
