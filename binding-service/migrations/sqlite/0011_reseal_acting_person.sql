-- Re-encryption rewrites the sealed acting person of an audit event under a newer key: the
-- append-only trigger now refuses every change but that one column (and every delete).
DROP TRIGGER binding_events_no_update;
CREATE TRIGGER binding_events_no_update
    BEFORE UPDATE OF sequence, binding_id, from_state, to_state, actor, reason, request_id,
        event_time, binding_version, caller ON binding_events
BEGIN SELECT RAISE(ABORT, 'binding_events is append-only'); END;
