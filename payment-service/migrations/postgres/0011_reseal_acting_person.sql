-- Re-encryption rewrites the sealed acting person of a movement under a newer key: the
-- append-only trigger now refuses every change but that one column (and every delete).
DROP TRIGGER movements_no_change ON movements;
CREATE TRIGGER movements_no_change
    BEFORE UPDATE OF movement_id, kind, request_id, create_time, business_date, purpose,
        destination, memo, caller OR DELETE ON movements
    FOR EACH ROW EXECUTE FUNCTION settled_facts_append_only();
