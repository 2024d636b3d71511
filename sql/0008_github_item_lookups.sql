-- Reads of a GitHub Projects v2 item's Status, for `projects_v2_item.edited` deliveries
-- that name the field but not its new value. A row is written in the transaction that
-- records the delivery's no-op; the dispatcher performs the read outside any
-- transaction and feeds the value back as a new `inbound_events` row built from the
-- original delivery (so it keeps that delivery's source timestamp). Claimed with
-- FOR UPDATE SKIP LOCKED under a lease, like `sync_outbox`; never deleted.

CREATE TABLE github_item_lookups (
    id               bigserial PRIMARY KEY,
    -- the item's node id (PVTI_…)
    item_id          text NOT NULL,
    -- the delivery that named only the field
    inbound_event_id bigint NOT NULL REFERENCES inbound_events (id),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'in_flight', 'done', 'noop', 'gone', 'superseded', 'dead')),
    attempt_count    integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz,
    -- the last failure's code (RATE_LIMIT, NOT_FOUND, …)
    error_code       text,
    -- what became of it, or the last failure
    outcome          text,
    -- the inbound_events row that carries the value read
    fed_event_id     bigint REFERENCES inbound_events (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
CREATE INDEX github_item_lookups_runnable ON github_item_lookups (run_at, id)
    WHERE state IN ('pending', 'in_flight');
CREATE INDEX github_item_lookups_item ON github_item_lookups (item_id, id)
    WHERE state IN ('pending', 'in_flight');
