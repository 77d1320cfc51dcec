-- The record of every state-changing call holds who made it: the caller (its scope) and
-- the person it acted for.
ALTER TABLE idempotency ADD COLUMN acting_person TEXT;
