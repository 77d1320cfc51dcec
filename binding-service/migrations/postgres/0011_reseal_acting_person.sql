-- Re-encryption rewrites the sealed acting person of an audit event under a newer key: the
-- append-only trigger now refuses every change but that one column (and every delete).
DROP TRIGGER binding_events_no_change ON binding_events;
CREATE TRIGGER binding_events_no_change
    BEFORE UPDATE OF sequence, binding_id, from_state, to_state, actor, reason, request_id,
        event_time, binding_version, caller OR DELETE ON binding_events
    FOR EACH ROW EXECUTE FUNCTION binding_events_append_only();
