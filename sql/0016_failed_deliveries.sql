-- Deliveries that were accepted but could not be applied are an operator's queue, like
-- the outbox's dead letters: listed (GET /api/v1/deliveries?state=failed), counted for
-- the `deliveries_failed` alert, and requeued (POST /api/v1/deliveries/{id}/retry).

-- Why it failed, as a stable code (UNPARSEABLE, REJECTED_BY_DATABASE, NOT_FOUND,
-- APPLY_FAILED); `outcome` keeps the message.
ALTER TABLE inbound_events ADD COLUMN error_code text;

-- Failed rows are few; the alert counts them and the API lists them on every read.
CREATE INDEX inbound_events_failed ON inbound_events (id) WHERE state = 'failed';
