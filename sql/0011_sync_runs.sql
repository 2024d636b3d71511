-- Backfills and reconciliations: where each scope's listing got to, and what each run did.

-- One row per scope (github owner/repo, linear team key).
CREATE TABLE sync_cursors (
    system         text NOT NULL CHECK (system IN ('linear', 'github')),
    scope          text NOT NULL,
    -- everything updated before this was applied by a completed run (incremental start)
    synced_until   timestamptz,
    -- an unfinished run's position: the page to fetch next (GitHub URL, Linear cursor)
    -- and the lower bound it was started with
    resume_page    text,
    resume_since   timestamptz,
    resume_run     uuid,
    -- conditional requests: the ETag of the first page of an incremental listing
    etag_url       text,
    etag           text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (system, scope)
);

CREATE TABLE sync_runs (
    id           uuid PRIMARY KEY,              -- the operationId
    system       text NOT NULL CHECK (system IN ('linear', 'github')),
    scope        text NOT NULL,
    mode         text NOT NULL CHECK (mode IN ('full', 'incremental')),
    trigger      text NOT NULL CHECK (trigger IN ('cli', 'api', 'reconcile')),
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'completed', 'stopped', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    pages        integer NOT NULL DEFAULT 0,
    not_modified integer NOT NULL DEFAULT 0,
    seen         integer NOT NULL DEFAULT 0,
    created      integer NOT NULL DEFAULT 0,
    changed      integer NOT NULL DEFAULT 0,
    unchanged    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    error        text
);
CREATE INDEX sync_runs_started ON sync_runs (started_at DESC);
CREATE INDEX sync_runs_scope ON sync_runs (system, scope, started_at DESC);

-- Systems whose backfills and reconciliations an operator paused.
CREATE TABLE sync_pauses (
    system    text PRIMARY KEY CHECK (system IN ('linear', 'github')),
    paused_at timestamptz NOT NULL DEFAULT now()
);

-- Which run stored which listed item, to count what the engine made of them.
ALTER TABLE inbound_events ADD COLUMN sync_run uuid;
CREATE INDEX inbound_events_sync_run ON inbound_events (sync_run) WHERE sync_run IS NOT NULL;

-- Named leases: with several replicas, one runs the periodic reconciliation.
CREATE TABLE sync_leases (
    name       text PRIMARY KEY,
    holder     uuid NOT NULL,
    expires_at timestamptz NOT NULL
);
