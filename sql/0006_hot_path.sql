-- Costs paid on every applied update, removed.

-- The engine's own status writes never need the direct-write trigger: deciding that in
-- the trigger's WHEN clause spares a PL/pgSQL call for every row the engine updates.
DROP TRIGGER entities_external_status ON entities;
CREATE TRIGGER entities_external_status
    AFTER UPDATE OF status ON entities
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status
          AND current_setting('statsync.writer', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION statsync_record_external_status();

-- History names the delivery a change came from, for the record. History outlives the
-- raw deliveries (which may be pruned), and checking the reference cost an index
-- lookup and a row lock on inbound_events for every transition written.
ALTER TABLE status_transitions DROP CONSTRAINT status_transitions_inbound_event_id_fkey;
