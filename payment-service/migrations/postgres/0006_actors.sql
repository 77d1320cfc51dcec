-- Every state change records who made it: the authenticated caller and the person it acted
-- for (empty and NULL for rows written before callers were authenticated).
ALTER TABLE movements ADD COLUMN caller TEXT NOT NULL DEFAULT '';
ALTER TABLE movements ADD COLUMN acting_person TEXT;
ALTER TABLE premium_payments ADD COLUMN caller TEXT NOT NULL DEFAULT '';
ALTER TABLE premium_payments ADD COLUMN acting_person TEXT;
ALTER TABLE premium_payments ADD COLUMN refund_caller TEXT;
ALTER TABLE premium_payments ADD COLUMN refund_acting_person TEXT;
ALTER TABLE medical_payments ADD COLUMN caller TEXT NOT NULL DEFAULT '';
ALTER TABLE medical_payments ADD COLUMN acting_person TEXT;
