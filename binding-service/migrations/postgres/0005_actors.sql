-- Every state change records who made it: the authenticated caller and the person it acted
-- for (empty and NULL for rows written before callers were authenticated).
ALTER TABLE binding_events ADD COLUMN caller TEXT NOT NULL DEFAULT '';
ALTER TABLE binding_events ADD COLUMN acting_person TEXT;
ALTER TABLE binding_uses ADD COLUMN caller TEXT NOT NULL DEFAULT '';
