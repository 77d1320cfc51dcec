-- The account event feed (WatchAccountEvents): each movement gets its feed position after it
-- commits, from one sequencer at a time, so a reader that has seen a position never finds a
-- lower one appearing later. A position, once given, never changes.
ALTER TABLE movements ADD COLUMN feed_position BIGINT;
CREATE UNIQUE INDEX movements_by_feed_position ON movements (feed_position);
-- What the sequencer has yet to number.
CREATE INDEX movements_unsequenced ON movements (create_time) WHERE feed_position IS NULL;
CREATE TRIGGER movements_feed_position_once
    BEFORE UPDATE OF feed_position ON movements
    FOR EACH ROW WHEN (OLD.feed_position IS NOT NULL)
    EXECUTE FUNCTION settled_facts_append_only();
