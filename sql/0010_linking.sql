-- Automatic linking of GitHub pull requests and issues to the Linear issues they name.

-- Linear teams statsync has seen (deliveries, backfills): only identifiers of these
-- teams (and of `linear.teams`) are taken for issues, so `UTF-8` never is one.
CREATE TABLE linear_teams (
    key        text PRIMARY KEY CHECK (key <> ''),
    first_seen timestamptz NOT NULL DEFAULT now()
);

-- Each pull request linked to a Linear issue by naming it, with its last known state:
-- the issue is done only when every closing pull request is merged.
CREATE TABLE linked_pull_requests (
    pull_request   text PRIMARY KEY,            -- github owner/repo#12
    issue          text NOT NULL,               -- linear identifier ENG-123
    closing        boolean NOT NULL,
    state          text NOT NULL CHECK (state IN ('draft', 'open', 'review_requested',
                                                  'merged', 'closed_unmerged')),
    last_source_ts timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX linked_pull_requests_issue ON linked_pull_requests (issue);
