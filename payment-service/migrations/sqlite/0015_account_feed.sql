-- The account event feed (WatchAccountEvents): each movement gets its feed position after it
-- commits, from one sequencer at a time, so a reader that has seen a position never finds a
-- lower one appearing later. A position, once given, never changes.
ALTER TABLE movements ADD COLUMN feed_position INTEGER;
CREATE UNIQUE INDEX movements_by_feed_position ON movements (feed_position);
-- What the sequencer has yet to number.
CREATE INDEX movements_unsequenced ON movements (create_time) WHERE feed_position IS NULL;
CREATE TRIGGER movements_feed_position_once
    BEFORE UPDATE OF feed_position ON movements
    WHEN OLD.feed_position IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a feed position never changes'); END;
