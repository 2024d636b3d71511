-- Where a stored delivery came from, as a column: `webhook` (a sender's delivery),
-- `backfill` (an item statsync listed), `lookup` (a value statsync read back). It used
-- to be told by a delivery-id prefix (`backfill:`, `lookup-`) and by event types the
-- webhook door had to refuse; the ids keep their prefixes, now only as unique names.
ALTER TABLE inbound_events ADD COLUMN origin text NOT NULL DEFAULT 'webhook'
    CHECK (origin IN ('webhook', 'backfill', 'lookup'));
UPDATE inbound_events SET origin = 'backfill' WHERE delivery_id LIKE 'backfill:%';
UPDATE inbound_events SET origin = 'lookup'
    WHERE delivery_id LIKE 'lookup-%' AND event_type = 'projects_v2_item.status_read';

-- A system is whatever connector is registered under that name (src/systems/registry.rs):
-- adding one needs no migration. The columns keep refusing what cannot be a name.
ALTER TABLE entity_links DROP CONSTRAINT entity_links_system_check,
    ADD CONSTRAINT entity_links_system_name CHECK (system ~ '^[a-z][a-z0-9_]{0,31}$');
ALTER TABLE inbound_events DROP CONSTRAINT inbound_events_system_check,
    ADD CONSTRAINT inbound_events_system_name CHECK (system ~ '^[a-z][a-z0-9_]{0,31}$');
ALTER TABLE sync_outbox DROP CONSTRAINT sync_outbox_system_check,
    ADD CONSTRAINT sync_outbox_system_name
        CHECK (system ~ '^[a-z][a-z0-9_]{0,31}$' AND system <> 'postgresql');
ALTER TABLE sync_cursors DROP CONSTRAINT sync_cursors_system_check,
    ADD CONSTRAINT sync_cursors_system_name CHECK (system ~ '^[a-z][a-z0-9_]{0,31}$');
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_system_check,
    ADD CONSTRAINT sync_runs_system_name CHECK (system ~ '^[a-z][a-z0-9_]{0,31}$');
ALTER TABLE sync_pauses DROP CONSTRAINT sync_pauses_system_check,
    ADD CONSTRAINT sync_pauses_system_name CHECK (system ~ '^[a-z][a-z0-9_]{0,31}$');
