//! `linear_teams` and `linked_pull_requests`: which Linear teams exist (so `UTF-8` is
//! never taken for an issue) and the state of every pull request linked to a Linear
//! issue by naming it or by a Linear attachment, one row per (pull request, issue) (so
//! each issue is done only when all its closing ones are merged).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::StoreError;
use crate::domain::GithubPullRequestState;

const REMEMBER_TEAMS: &str = "INSERT INTO linear_teams (key)
    SELECT DISTINCT k FROM unnest($1::text[]) AS k WHERE k <> ''
    ON CONFLICT (key) DO NOTHING";

pub async fn remember_teams(
    client: &impl GenericClient,
    keys: &[String],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let stmt = client.prepare_cached(REMEMBER_TEAMS).await?;
    client.execute(&stmt, &[&keys]).await?;
    Ok(())
}

const KNOWN_TEAMS: &str = "SELECT key FROM linear_teams WHERE key = ANY($1)";

/// Which of `keys` are teams seen before.
pub async fn known_teams(
    client: &impl GenericClient,
    keys: &[String],
) -> Result<HashSet<String>, StoreError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let stmt = client.prepare_cached(KNOWN_TEAMS).await?;
    let rows = client.query(&stmt, &[&keys]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Serializes, until the transaction ends, every writer of the pull requests of these
/// issues: two closing pull requests merged at once must each see the other's state.
pub async fn lock_issues(client: &impl GenericClient, issues: &[String]) -> Result<(), StoreError> {
    super::advisory_locks(client, "linear-issue", issues).await
}

/// A pull request linked to a Linear issue.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkedPullRequest {
    pub pull_request: String,
    pub issue: String,
    pub closing: bool,
    pub state: GithubPullRequestState,
    pub last_source_ts: DateTime<Utc>,
    /// Attached in Linear (as opposed to named in the pull request's texts).
    pub attached: bool,
}

const OF_PULL_REQUESTS: &str = "SELECT pull_request, issue, closing, state, last_source_ts, via
    FROM linked_pull_requests WHERE pull_request = ANY((SELECT $1::text[])::text[])
    ORDER BY pull_request, issue";
const OF_ISSUES: &str = "SELECT pull_request, issue, closing, state, last_source_ts, via
    FROM linked_pull_requests WHERE issue = ANY($1)";

fn state_text(s: GithubPullRequestState) -> &'static str {
    use GithubPullRequestState as Pr;
    match s {
        Pr::Draft => "draft",
        Pr::Open => "open",
        Pr::ReviewRequested => "review_requested",
        Pr::Merged => "merged",
        Pr::ClosedUnmerged => "closed_unmerged",
    }
}

fn read(rows: Vec<tokio_postgres::Row>) -> Result<Vec<LinkedPullRequest>, StoreError> {
    rows.iter()
        .map(|r| {
            let state: String = r.get(3);
            let state = serde_json::from_value(serde_json::Value::String(state.clone()))
                .map_err(|_| StoreError::Corrupt(format!("pull request state `{state}`")))?;
            Ok(LinkedPullRequest {
                pull_request: r.get(0),
                issue: r.get(1),
                closing: r.get(2),
                state,
                last_source_ts: r.get(4),
                attached: r.get::<_, String>(5) == "attachment",
            })
        })
        .collect()
}

/// The links recorded for these pull requests, by pull request.
pub async fn of_pull_requests(
    client: &impl GenericClient,
    pull_requests: &[String],
) -> Result<HashMap<String, Vec<LinkedPullRequest>>, StoreError> {
    if pull_requests.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = client.prepare_cached(OF_PULL_REQUESTS).await?;
    let mut out: HashMap<String, Vec<LinkedPullRequest>> = HashMap::new();
    for l in read(client.query(&stmt, &[&pull_requests]).await?)? {
        out.entry(l.pull_request.clone()).or_default().push(l);
    }
    Ok(out)
}

/// Every pull request linked to these issues.
pub async fn of_issues(
    client: &impl GenericClient,
    issues: &[String],
) -> Result<Vec<LinkedPullRequest>, StoreError> {
    if issues.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client.prepare_cached(OF_ISSUES).await?;
    read(client.query(&stmt, &[&issues]).await?)
}

// An older report (a backfill listing behind a webhook) never overwrites a newer one;
// a link made by an attachment stays one (`via`) whatever the texts say later.
const UPSERT: &str = "INSERT INTO linked_pull_requests
        (pull_request, issue, closing, state, last_source_ts, via)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (pull_request, issue) DO UPDATE
    SET closing = excluded.closing, state = excluded.state,
        last_source_ts = excluded.last_source_ts, updated_at = now()
    WHERE linked_pull_requests.last_source_ts <= excluded.last_source_ts";
// An attachment tells nothing newer about the pull request's state than a row has.
const ATTACH: &str = "INSERT INTO linked_pull_requests
        (pull_request, issue, closing, state, last_source_ts, via)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (pull_request, issue) DO UPDATE SET via = 'attachment', closing = true
    WHERE linked_pull_requests.via <> 'attachment' OR NOT linked_pull_requests.closing";

async fn write(
    client: &impl GenericClient,
    sql: &str,
    l: &LinkedPullRequest,
) -> Result<(), StoreError> {
    let stmt = client.prepare_cached(sql).await?;
    let via = if l.attached { "attachment" } else { "text" };
    client
        .execute(
            &stmt,
            &[
                &l.pull_request,
                &l.issue,
                &l.closing,
                &state_text(l.state),
                &l.last_source_ts,
                &via,
            ],
        )
        .await?;
    Ok(())
}

/// Records a pull request's state for one issue it is linked to.
pub async fn upsert(client: &impl GenericClient, l: &LinkedPullRequest) -> Result<(), StoreError> {
    write(client, UPSERT, l).await
}

/// Records a pull request attached to an issue in Linear (closing, as Linear's own
/// automation treats attached pull requests); a known state is kept.
pub async fn attach(client: &impl GenericClient, l: &LinkedPullRequest) -> Result<(), StoreError> {
    write(client, ATTACH, l).await
}
