-- Movements, settlements and what they settled are facts: nothing rewrites or removes them.
CREATE TRIGGER movements_no_update BEFORE UPDATE ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
CREATE TRIGGER movements_no_delete BEFORE DELETE ON movements
BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END;
CREATE TRIGGER settlements_no_update BEFORE UPDATE ON settlements
BEGIN SELECT RAISE(ABORT, 'settlements are append-only'); END;
CREATE TRIGGER settlements_no_delete BEFORE DELETE ON settlements
BEGIN SELECT RAISE(ABORT, 'settlements are append-only'); END;
CREATE TRIGGER settlement_lines_no_update BEFORE UPDATE ON settlement_lines
BEGIN SELECT RAISE(ABORT, 'settlement_lines are append-only'); END;
CREATE TRIGGER settlement_lines_no_delete BEFORE DELETE ON settlement_lines
BEGIN SELECT RAISE(ABORT, 'settlement_lines are append-only'); END;
CREATE TRIGGER settled_movements_no_update BEFORE UPDATE ON settled_movements
BEGIN SELECT RAISE(ABORT, 'settled_movements are append-only'); END;
CREATE TRIGGER settled_movements_no_delete BEFORE DELETE ON settled_movements
BEGIN SELECT RAISE(ABORT, 'settled_movements are append-only'); END;
