-- Costs paid by every delivery on its way in, measured under load and cut.

-- The event log's insert is the one part of an applying transaction that every
-- event-writing transaction of every replica waits for (the seq lock is held from it to
-- the commit), so its indexes are kept to what reading the log needs.
--
-- The GIN index on rooms cost an entry per room per event and, every 4 MB of pending
-- entries, a clean-up paid by whichever insert crossed the line, inside the lock.
-- Readers never needed it: every read is a range of seq (resume, replay, the
-- WebSocketManager's pages) with the rooms checked on the rows of that range.
DROP INDEX events_rooms;

-- Event ids are v4 UUIDs made by statsync and are never looked up; the unique index
-- was a random-page B-tree insert per event.
ALTER TABLE events DROP CONSTRAINT events_id_key;

-- Webhook bodies (a GitHub delivery is 14–28 KB) are compressed into TOAST as they are
-- stored. pglz took a sixth of PostgreSQL's CPU under webhook load; lz4 is several times
-- cheaper for a similar ratio on JSON. Builds without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE inbound_events ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available; inbound bodies stay pglz-compressed';
END
$$;
