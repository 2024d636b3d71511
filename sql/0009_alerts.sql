-- The SyncMonitor's active alerts: a row while an alert fires, deleted when it resolves
-- (both moments are also `alert_fired` / `alert_resolved` events in the log). Held here
-- so every replica answers GET /alerts alike and a restart keeps what is firing.

CREATE TABLE active_alerts (
    name       text PRIMARY KEY,
    severity   text NOT NULL CHECK (severity IN ('warning', 'critical')),
    value      double precision NOT NULL,
    threshold  double precision NOT NULL,
    message    text NOT NULL,
    since      timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The alert figures look back over a window: outbound writes finished or failed in it,
-- decisions taken in it.
CREATE INDEX sync_outbox_updated_at ON sync_outbox (updated_at);
CREATE INDEX status_transitions_created_at ON status_transitions (created_at);
