//! Linear webhook deliveries (`Issue` create / update / remove; `Attachment` create /
//! update with a GitHub URL, a link; every other type ignored) turned into
//! `StatusUpdate`s, plus the `webhookTimestamp` freshness check.
//! Reads only the fields it needs; never panics on any input, never reads the clock
//! (callers pass `now`), never does I/O.

use serde_json::Value;

use crate::domain::{EntityKind, ExternalRef, NativeStatus, StatusUpdate, SystemId, UpdateAction};
use crate::systems::{
    lookup, metadata, optional, parse_object, required, timestamp, Parsed, PayloadError,
};

/// The delivery types `parse` acts on; every other type is ignored.
pub const HANDLED_TYPES: [&str; 2] = ["Issue", "Attachment"];

/// How far `webhookTimestamp` may be from now (Linear's own SDK uses one minute).
pub const TIMESTAMP_TOLERANCE_MS: i64 = 60_000;

/// A parsed Linear delivery: its send time, to check against replay, and what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearDelivery {
    /// `webhookTimestamp`: when Linear sent it, Unix milliseconds.
    pub webhook_timestamp_ms: i64,
    pub parsed: Parsed,
}

/// A delivery sent too long ago (a replay) or too far in the future (a skewed clock).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("webhookTimestamp is {age_ms} ms old, more than the {tolerance_ms} ms allowed")]
    TooOld { age_ms: i128, tolerance_ms: i64 },
    #[error(
        "webhookTimestamp is {ahead_ms} ms in the future, more than the {tolerance_ms} ms allowed"
    )]
    InFuture { ahead_ms: i128, tolerance_ms: i64 },
}

/// Rejects a delivery whose `webhookTimestamp` is more than `tolerance_ms` from `now_ms`.
pub fn check_timestamp(
    webhook_timestamp_ms: i64,
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<(), TimestampError> {
    // i128: no pair of i64 timestamps can overflow the difference.
    let age_ms = i128::from(now_ms) - i128::from(webhook_timestamp_ms);
    if age_ms > i128::from(tolerance_ms) {
        Err(TimestampError::TooOld {
            age_ms,
            tolerance_ms,
        })
    } else if -age_ms > i128::from(tolerance_ms) {
        Err(TimestampError::InFuture {
            ahead_ms: -age_ms,
            tolerance_ms,
        })
    } else {
        Ok(())
    }
}

/// Parses one delivery. `webhookTimestamp` is required for every type, even ignored
/// ones, so that the caller can refuse replays (Linear's SDK lets its absence through).
pub fn parse(body: &[u8]) -> Result<LinearDelivery, PayloadError> {
    let root = parse_object(body)?;
    let webhook_timestamp_ms = webhook_timestamp(&root)?;
    let kind: String = required(&root, "type")?;
    let action: String = required(&root, "action")?;
    let parsed = match kind.as_str() {
        "Issue" => issue(&root, &action)?,
        "Attachment" => attachment(&root, &action)?,
        _ => ignored(format!("Linear `{kind}` events are not status changes")),
    };
    Ok(LinearDelivery {
        webhook_timestamp_ms,
        parsed,
    })
}

fn issue(root: &Value, action: &str) -> Result<Parsed, PayloadError> {
    let action = match action {
        "create" => status(root)?,
        "update" => {
            // `updatedFrom` holds the previous value of every changed property: without
            // `stateId` the state did not change (a title edit, a new label…).
            if lookup(root, "updatedFrom.stateId")?.is_none() {
                return Ok(ignored("state unchanged".into()));
            }
            status(root)?
        }
        "remove" => UpdateAction::Removed,
        other => {
            return Ok(ignored(format!(
                "Linear Issue action `{other}` is not handled"
            )))
        }
    };
    let id: String = required(root, "data.id")?;
    let identifier: Option<String> = optional(root, "data.identifier")?;
    let team_key: Option<String> = optional(root, "data.team.key")?;
    let project = team_key.or_else(|| identifier.as_deref().and_then(team_key_of));
    let url: Option<String> = match optional(root, "url")? {
        Some(url) => Some(url),
        None => optional(root, "data.url")?,
    };
    let actor_name: Option<String> = optional(root, "actor.name")?;
    let actor_id: Option<String> = optional(root, "actor.id")?;
    let (links, pull_requests) = attachment_links(root)?;
    Ok(Parsed::Updates(vec![StatusUpdate {
        source: SystemId::Linear,
        target: ExternalRef::new(SystemId::Linear, id),
        aliases: alias_of(identifier.as_deref()),
        links,
        kind: EntityKind::Issue,
        action,
        source_timestamp: timestamp(root, "data.updatedAt")?,
        project,
        explicit: made_by_a_person(root)?,
        title: optional(root, "data.title")?,
        body: None,
        metadata: metadata([
            ("url", url.map(Value::from)),
            ("identifier", identifier.map(Value::from)),
            ("actor", actor_name.map(Value::from)),
            ("actorId", actor_id.map(Value::from)),
            (PULL_REQUESTS, pull_requests),
        ]),
    }]))
}

/// An attachment added to an issue (or its URL changed): a GitHub pull request or issue
/// URL links that object to the issue's entity, as Linear's own GitHub integration does.
/// A removed attachment is ignored: the object keeps the entity it shares.
fn attachment(root: &Value, action: &str) -> Result<Parsed, PayloadError> {
    if !matches!(action, "create" | "update") {
        return Ok(ignored(format!(
            "Linear Attachment action `{action}` is not handled"
        )));
    }
    let url: String = required(root, "data.url")?;
    let (_, pull_requests) = github_links([url.as_str()]);
    let Some(github) = github_link(&url) else {
        return Ok(ignored(format!(
            "attachment {url} is not a GitHub pull request or issue"
        )));
    };
    let issue: String = match optional(root, "data.issueId")? {
        Some(id) => id,
        None => required(root, "data.issue.id")?,
    };
    let identifier: Option<String> = optional(root, "data.issue.identifier")?;
    Ok(Parsed::Updates(vec![StatusUpdate {
        source: SystemId::Linear,
        target: ExternalRef::new(SystemId::Linear, issue),
        aliases: alias_of(identifier.as_deref()),
        links: vec![github],
        kind: EntityKind::Issue,
        action: UpdateAction::Linked,
        source_timestamp: timestamp(root, "data.updatedAt")?,
        project: identifier.as_deref().and_then(team_key_of),
        explicit: false,
        title: None,
        body: None,
        metadata: metadata([(PULL_REQUESTS, pull_requests)]),
    }]))
}

/// A Linear issue's identifier (`ENG-123`) as an alias of its id.
fn alias_of(identifier: Option<&str>) -> Vec<ExternalRef> {
    identifier
        .map(|i| ExternalRef::new(SystemId::Linear, i))
        .into_iter()
        .collect()
}

/// The GitHub pull request or issue a URL names, as a link.
fn github_link(url: &str) -> Option<ExternalRef> {
    crate::systems::github::ref_of_url(url).map(|r| ExternalRef::new(SystemId::Github, r))
}

/// Metadata key of a Linear update: the GitHub pull requests (`owner/repo#12`) among its
/// links, which count in the issue's multi-PR rule like pull requests naming it.
pub const PULL_REQUESTS: &str = "pullRequests";

/// GitHub pull requests and issues among the issue's attachments
/// (`data.attachments.nodes[].url`, present when the issue was read through the API):
/// linked to the same entity; and which of them are pull requests.
fn attachment_links(root: &Value) -> Result<(Vec<ExternalRef>, Option<Value>), PayloadError> {
    let Some(nodes) = optional::<Vec<Value>>(root, "data.attachments.nodes")? else {
        return Ok((Vec::new(), None));
    };
    Ok(github_links(
        nodes.iter().filter_map(|n| n.get("url")?.as_str()),
    ))
}

/// The GitHub refs among `urls`, and those of pull requests (`…/pull/12`) as a JSON list
/// when there are any.
fn github_links<'a>(urls: impl IntoIterator<Item = &'a str>) -> (Vec<ExternalRef>, Option<Value>) {
    let mut links = Vec::new();
    let mut pulls = Vec::new();
    for url in urls {
        if let Some(r) = github_link(url) {
            if url.split('/').nth(5) == Some("pull") {
                pulls.push(Value::from(r.external_id.clone()));
            }
            links.push(r);
        }
    }
    (links, (!pulls.is_empty()).then_some(Value::Array(pulls)))
}

/// The issue's workflow state as the delivery tells it.
fn status(root: &Value) -> Result<UpdateAction, PayloadError> {
    let state_id: Option<String> = match optional(root, "data.stateId")? {
        Some(id) => Some(id),
        None => optional(root, "data.state.id")?,
    };
    if state_id.is_none() {
        return Err(PayloadError::Missing("data.stateId".into()));
    }
    Ok(UpdateAction::Status {
        native: NativeStatus::Linear {
            state_id,
            name: optional(root, "data.state.name")?,
            state_type: optional(root, "data.state.type")?,
        },
    })
}

/// Whether a person made the change, which makes a state change an explicit reopen.
/// The rule: an `actor` is present and its `type` is `user` (any case) or absent; an
/// untyped actor is taken to be a person. Integrations, OAuth applications and
/// deliveries without an actor (Linear's own automations) are not people.
fn made_by_a_person(root: &Value) -> Result<bool, PayloadError> {
    if lookup(root, "actor")?.is_none() {
        return Ok(false);
    }
    let actor_type: Option<String> = optional(root, "actor.type")?;
    Ok(match actor_type {
        None => true,
        Some(t) => t.eq_ignore_ascii_case("user"),
    })
}

/// `webhookTimestamp` in ms: a JSON number (the schema says Float), whole or not.
fn webhook_timestamp(root: &Value) -> Result<i64, PayloadError> {
    const FIELD: &str = "webhookTimestamp";
    let Some(value) = lookup(root, FIELD)? else {
        return Err(PayloadError::Missing(FIELD.into()));
    };
    if let Some(ms) = value.as_i64() {
        return Ok(ms);
    }
    match value.as_f64() {
        // i64::MAX as f64 rounds up to 2^63, hence the strict upper bound.
        Some(ms) if ms.is_finite() && ms >= i64::MIN as f64 && ms < i64::MAX as f64 => {
            Ok(ms.trunc() as i64)
        }
        Some(ms) => Err(PayloadError::invalid(
            FIELD,
            format!("{ms} is out of range for milliseconds since 1970"),
        )),
        None => Err(PayloadError::invalid(
            FIELD,
            "expected a number of milliseconds since 1970",
        )),
    }
}

/// `ENG` from an issue identifier `ENG-123`; `None` for anything else (a UUID).
pub(crate) fn team_key_of(identifier: &str) -> Option<String> {
    let (key, number) = identifier.split_once('-')?;
    let numeric = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    let key_like = key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (numeric && key_like).then(|| key.to_owned())
}

fn ignored(reason: String) -> Parsed {
    Parsed::Ignored { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::test_support::{
        arb_json, at, edited, invalid_field, linear_issue_update as issue_update, one, set,
        LINEAR_ISSUE_ID as ISSUE_ID, LINEAR_SENT_MS as SENT_MS,
    };
    use proptest::prelude::*;
    use serde_json::json;

    /// `issue_update()` with some fields replaced (`None` removes one), parsed.
    fn edit(edits: &[(&str, Option<Value>)]) -> Result<LinearDelivery, PayloadError> {
        parse(&edited(issue_update(), edits))
    }

    fn update_of(edits: &[(&str, Option<Value>)]) -> StatusUpdate {
        one(edit(edits).map(|d| d.parsed))
    }

    fn in_progress() -> UpdateAction {
        UpdateAction::Status {
            native: NativeStatus::Linear {
                state_id: Some("8c1f6a0e-1111-4b2c-9d3e-000000000002".into()),
                name: Some("In Progress".into()),
                state_type: Some("started".into()),
            },
        }
    }

    #[test]
    fn github_attachments_of_an_issue_read_through_the_api_are_links() {
        let attachments = json!({"nodes": [
            {"url": "https://github.com/acme/api/pull/12"},
            {"url": "https://figma.com/file/x"},
            {"url": "https://github.com/acme/api/issues/3"},
        ]});
        let got = update_of(&[set("data.attachments", attachments)]);
        let github = |r: &str| ExternalRef::new(SystemId::Github, r);
        assert_eq!(got.links, vec![github("acme/api#12"), github("acme/api#3")]);
        let bad = edit(&[set("data.attachments.nodes", json!("x"))]).unwrap_err();
        assert_eq!(invalid_field(bad), "data.attachments.nodes");
    }

    /// An `Attachment` delivery as the schema's `AttachmentWebhookPayload` has it.
    fn attachment_delivery(action: &str, url: &str) -> Value {
        json!({
            "action": action, "type": "Attachment", "webhookTimestamp": SENT_MS,
            "organizationId": "o", "webhookId": "w", "createdAt": "2024-05-01T11:59:59.512Z",
            "url": url,
            "data": {
                "id": "att-1", "createdAt": "2024-05-01T11:59:59.000Z",
                "updatedAt": "2024-05-01T11:59:59.500Z", "issueId": ISSUE_ID,
                "title": "Fix login", "url": url, "groupBySource": false,
                "metadata": {}, "sourceType": "github"
            }
        })
    }

    #[test]
    fn a_github_attachment_links_its_pull_request_to_the_issue() {
        let url = "https://github.com/acme/api/pull/12";
        let body = serde_json::to_vec(&attachment_delivery("create", url)).unwrap();
        let got = one(parse(&body).map(|d| d.parsed));
        assert_eq!(got.target, ExternalRef::new(SystemId::Linear, ISSUE_ID));
        assert_eq!(
            got.links,
            vec![ExternalRef::new(SystemId::Github, "acme/api#12")]
        );
        assert_eq!(got.action, UpdateAction::Linked);
        assert!(!got.explicit);
        assert_eq!(got.source_timestamp, at("2024-05-01T11:59:59.500Z"));

        let mut by_issue = attachment_delivery("update", url);
        by_issue["data"]["issueId"] = Value::Null;
        by_issue["data"]["issue"] = json!({"id": ISSUE_ID, "identifier": "ENG-123"});
        let got = one(parse(&serde_json::to_vec(&by_issue).unwrap()).map(|d| d.parsed));
        assert_eq!(got.target.external_id, ISSUE_ID);
        assert_eq!(
            got.aliases,
            vec![ExternalRef::new(SystemId::Linear, "ENG-123")]
        );
        assert_eq!(got.project.as_deref(), Some("ENG"));
    }

    #[test]
    fn other_attachments_and_removals_are_ignored_and_bad_ones_named() {
        for (action, url) in [
            ("create", "https://figma.com/file/x"),
            ("remove", "https://github.com/acme/api/pull/12"),
        ] {
            let body = serde_json::to_vec(&attachment_delivery(action, url)).unwrap();
            let parsed = parse(&body).unwrap().parsed;
            assert!(matches!(parsed, Parsed::Ignored { .. }), "{action} {url}");
        }
        let mut no_issue = attachment_delivery("create", "https://github.com/a/b/pull/1");
        no_issue["data"]["issueId"] = Value::Null;
        let err = parse(&serde_json::to_vec(&no_issue).unwrap()).unwrap_err();
        assert_eq!(err, PayloadError::Missing("data.issue.id".into()));
    }

    #[test]
    fn a_state_change_is_an_explicit_update_of_the_issue() {
        let delivery = edit(&[]).unwrap();
        assert_eq!(delivery.webhook_timestamp_ms, SENT_MS);
        let url = "https://linear.app/acme/issue/ENG-123/retry-outbound-writes";
        let want = StatusUpdate {
            source: SystemId::Linear,
            target: ExternalRef::new(SystemId::Linear, ISSUE_ID),
            aliases: vec![ExternalRef::new(SystemId::Linear, "ENG-123")],
            links: vec![],
            kind: EntityKind::Issue,
            action: in_progress(),
            source_timestamp: at("2024-05-01T11:59:59.500Z"),
            project: Some("ENG".into()),
            explicit: true,
            title: Some("Retry outbound writes".into()),
            body: None,
            metadata: json!({"url": url, "identifier": "ENG-123", "actor": "Ada Lovelace", "actorId": "5f6a1d9e-0c8e-4a51-9f0b-7d0f2b0d7e11"}),
        };
        assert_eq!(one(Ok(delivery.parsed)), want);
    }

    #[test]
    fn a_created_issue_reports_its_state() {
        let got = update_of(&[set("action", json!("create")), ("updatedFrom", None)]);
        assert_eq!(got.action, in_progress());
    }

    #[test]
    fn an_update_that_leaves_the_state_is_ignored() {
        let title_only = json!({"title": "Retry writes", "updatedAt": "2024-05-01T10:00:00Z"});
        for updated_from in [Some(title_only), None] {
            let delivery = edit(&[("updatedFrom", updated_from)]).unwrap();
            assert_eq!(delivery.parsed, ignored("state unchanged".into()));
        }
    }

    #[test]
    fn a_removed_issue_drops_its_link() {
        let got = update_of(&[set("action", json!("remove")), ("updatedFrom", None)]);
        assert_eq!(got.action, UpdateAction::Removed);
        assert_eq!(got.target.external_id, ISSUE_ID);
    }

    #[test]
    fn other_types_are_ignored_but_still_timestamped() {
        let comment = json!({
            "action": "create", "type": "Comment", "webhookTimestamp": SENT_MS,
            "data": {"id": "c-1", "body": "LGTM", "issueId": ISSUE_ID},
            "organizationId": "o", "webhookId": "w", "createdAt": "2024-05-01T11:59:59.512Z"
        });
        let delivery = parse(&serde_json::to_vec(&comment).unwrap()).unwrap();
        assert_eq!(delivery.webhook_timestamp_ms, SENT_MS);
        let want = ignored("Linear `Comment` events are not status changes".into());
        assert_eq!(delivery.parsed, want);
    }

    #[test]
    fn only_people_make_explicit_changes() {
        let cases = [
            (json!({"id": "u", "name": "Ada"}), true),
            (json!({"id": "u", "name": "Ada", "type": "user"}), true),
            (
                json!({"id": "i", "service": "github", "type": "integration"}),
                false,
            ),
            (
                json!({"id": "o", "name": "Agent", "type": "oauthClient"}),
                false,
            ),
            (Value::Null, false),
        ];
        for (actor, explicit) in cases {
            let got = update_of(&[set("actor", actor.clone())]);
            assert_eq!(got.explicit, explicit, "{actor}");
        }
        assert!(!update_of(&[("actor", None)]).explicit);
    }

    #[test]
    fn without_a_team_the_project_comes_from_the_identifier() {
        let got = update_of(&[("data.team", None)]);
        assert_eq!(got.project.as_deref(), Some("ENG"));
        let got = update_of(&[("data.team", None), ("data.identifier", None)]);
        assert_eq!((got.project, got.aliases), (None, vec![]));
        assert_eq!(team_key_of("WEB2-7").as_deref(), Some("WEB2"));
        assert_eq!(team_key_of("2f2a8f5e-3c6b-4c1e-9a7d-000000000001"), None);
        assert_eq!(team_key_of("ENG-"), None);
        assert_eq!(team_key_of("-12"), None);
    }

    #[test]
    fn a_state_object_without_state_id_still_names_the_state() {
        let got = update_of(&[("data.stateId", None)]);
        assert_eq!(got.action, in_progress());
        let err = edit(&[("data.stateId", None), ("data.state", None)]).unwrap_err();
        assert_eq!(err, PayloadError::Missing("data.stateId".into()));
    }

    #[test]
    fn a_missing_webhook_timestamp_is_rejected() {
        let err = edit(&[("webhookTimestamp", None)]).unwrap_err();
        assert_eq!(err, PayloadError::Missing("webhookTimestamp".into()));
        assert_eq!(err.to_string(), "missing field `webhookTimestamp`");
        for bad in [json!("1714564800000"), json!(1e300), json!(-1e300)] {
            let err = edit(&[set("webhookTimestamp", bad)]).unwrap_err();
            assert_eq!(invalid_field(err), "webhookTimestamp");
        }
        let float = edit(&[set("webhookTimestamp", json!(1_714_564_800_000.7))]);
        assert_eq!(float.unwrap().webhook_timestamp_ms, SENT_MS);
    }

    #[test]
    fn malformed_issue_deliveries_name_the_field() {
        let err = edit(&[("data.id", None)]).unwrap_err();
        assert_eq!(err, PayloadError::Missing("data.id".into()));
        let err = edit(&[set("data.updatedAt", json!(17))]).unwrap_err();
        assert_eq!(invalid_field(err), "data.updatedAt");
        let err = edit(&[set("updatedFrom", json!("stateId"))]).unwrap_err();
        assert_eq!(invalid_field(err), "updatedFrom");
        let truncated = parse(br#"{"type":"Issue""#);
        assert!(matches!(truncated, Err(PayloadError::Json(_))));
    }

    #[test]
    fn timestamps_two_minutes_old_are_rejected_and_thirty_seconds_accepted() {
        let check = |now: i64| check_timestamp(SENT_MS, now, TIMESTAMP_TOLERANCE_MS);
        let err = check(SENT_MS + 120_000).unwrap_err();
        let (age_ms, tolerance_ms) = (120_000, 60_000);
        assert_eq!(
            err,
            TimestampError::TooOld {
                age_ms,
                tolerance_ms
            }
        );
        let want = "webhookTimestamp is 120000 ms old, more than the 60000 ms allowed";
        assert_eq!(err.to_string(), want);
        for now in [
            SENT_MS + 30_000,
            SENT_MS + 60_000,
            SENT_MS - 30_000,
            SENT_MS,
        ] {
            assert_eq!(check(now), Ok(()));
        }
        let err = check(SENT_MS - 90_000).unwrap_err();
        assert!(err.to_string().contains("90000 ms in the future"), "{err}");
        assert!(check_timestamp(i64::MIN, i64::MAX, TIMESTAMP_TOLERANCE_MS).is_err());
    }

    proptest! {
        #[test]
        fn any_value_in_any_read_field_never_panics(
            path in prop::sample::select(vec![
                "action", "type", "webhookTimestamp", "url", "actor", "actor.type", "actor.name",
                "actor.id",                "data", "data.id", "data.identifier", "data.stateId", "data.state",
                "data.state.type", "data.team", "data.team.key", "data.updatedAt", "data.title",
                "updatedFrom", "updatedFrom.stateId",
            ]),
            replacement in prop::option::of(arb_json()),
        ) {
            // Whatever is read, the door's stored reading of it reads back the same.
            if let Ok(Parsed::Updates(updates)) = edit(&[(path, replacement)]).map(|d| d.parsed) {
                prop_assert_eq!(crate::systems::stored::round_trip(&updates), Some(updates));
            }
        }

        #[test]
        fn check_timestamp_never_panics(ts in any::<i64>(), now in any::<i64>(), tol in any::<i64>()) {
            let _ = check_timestamp(ts, now, tol);
        }
    }
}
