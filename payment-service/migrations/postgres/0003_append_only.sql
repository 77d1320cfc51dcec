-- Movements, settlements and what they settled are facts: nothing rewrites or removes them.
CREATE FUNCTION settled_facts_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;
CREATE TRIGGER movements_no_change BEFORE UPDATE OR DELETE ON movements
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
CREATE TRIGGER settlements_no_change BEFORE UPDATE OR DELETE ON settlements
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
CREATE TRIGGER settlement_lines_no_change BEFORE UPDATE OR DELETE ON settlement_lines
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
CREATE TRIGGER settled_movements_no_change BEFORE UPDATE OR DELETE ON settled_movements
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
