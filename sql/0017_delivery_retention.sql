-- Retention of raw deliveries (`intake.retention_days`): the body of a delivery that was
-- processed or ignored is dropped once it is older than that; the row stays, so its id
-- still answers a redelivery as a duplicate and the history that points to it keeps
-- its provenance. Pending and failed deliveries keep their bodies (they are still to be
-- applied, or to be retried).
ALTER TABLE inbound_events ALTER COLUMN body DROP NOT NULL;

-- Received times grow with the insert order, and the pruner reads only a range of old
-- ones: a block-range summary does, at no cost to the inserts (as 0014 for the logs).
CREATE INDEX inbound_events_received_at ON inbound_events USING brin (received_at);
