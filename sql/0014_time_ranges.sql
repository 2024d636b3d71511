-- Every applied update writes a transition and an event, each of which kept a B-tree
-- entry on its creation time. Both columns grow with the insert order, and they are only
-- ever read as a range of recent time (the SyncMonitor's windows) or of old time (pruning
-- the event log), so a block-range summary answers the same queries: it is updated only
-- when a new range of pages starts, where the B-tree took an entry per row.
DROP INDEX status_transitions_created_at;
CREATE INDEX status_transitions_created_at ON status_transitions USING brin (created_at);
DROP INDEX events_created_at;
CREATE INDEX events_created_at ON events USING brin (created_at);
