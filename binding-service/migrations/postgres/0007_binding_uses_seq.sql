-- Uses take their position from a sequence, so uses of different bindings are recorded
-- side by side (each binding's uses still one at a time, under its row lock).
CREATE SEQUENCE binding_uses_seq;
SELECT setval('binding_uses_seq', COALESCE((SELECT MAX(seq) FROM binding_uses), 0) + 1, false);
