//! One folder per external system (GitHub, Linear, the agent API), each a `Connector`
//! (`connector.rs`): its webhook deliveries verified and turned into domain
//! `StatusUpdate`s, its writes made through its own client. This module owns what they
//! share: the parse result, the payload error the HTTP layer answers 400 with, the small
//! JSON readers that name the dotted path of whatever was wrong, and the list of
//! connectors registered beyond the built-in three. Parsing does no I/O, reads no
//! clock, and never panics on any input; only the clients call out.

pub mod a2a;
pub mod agentapi;
pub mod connector;
#[cfg(test)]
mod fuzz;
pub mod github;
pub mod identity;
pub mod limiter;
pub mod linear;
pub mod outbound;
pub mod pruned;
pub mod signature;
pub mod stored;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::StatusUpdate;

/// The connectors beyond GitHub, Linear and the agent API (which are built from their
/// own settings sections in `startup/connectors.rs`). A new system is declared above
/// (`pub mod jira;`) and registered here (`jira::REGISTRATION`); the README's Layout
/// section has the whole recipe.
pub const REGISTERED: &[&connector::Registration] = &[&a2a::REGISTRATION];

/// What a verified, well-formed delivery means to statsync.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Updates(Vec<StatusUpdate>),
    /// Well-formed, but nothing statsync acts on (`ping`, a label change, a comment).
    Ignored {
        reason: String,
    },
}

/// Why a delivery body could not be understood. The message names what was wrong; the
/// HTTP layer returns it as the body of a 400.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PayloadError {
    /// Not JSON at all; carries serde_json's message with its line and column.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A required field is absent, named by its dotted path: `pull_request.number`.
    #[error("missing field `{0}`")]
    Missing(String),
    #[error("field `{field}` is invalid: {why}")]
    Invalid { field: String, why: String },
}

impl PayloadError {
    /// The UPPER_SNAKE_CASE error code for the HTTP error body.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::Json(_) => "MALFORMED_JSON",
            PayloadError::Missing(_) => "MISSING_FIELD",
            PayloadError::Invalid { .. } => "INVALID_FIELD",
        }
    }

    pub(crate) fn invalid(field: &str, why: impl Into<String>) -> Self {
        PayloadError::Invalid {
            field: field.to_owned(),
            why: why.into(),
        }
    }
}

/// Longer than any id of GitHub (`owner/repo#n` is at most 150), Linear or an agent.
pub const MAX_EXTERNAL_ID_LEN: usize = 200;

/// Why `r` cannot name an object of its system, if it cannot: refs from the API are
/// checked here where they enter, by each system's own rules.
pub fn check_ref(r: &crate::domain::ExternalRef) -> Result<(), String> {
    let id = r.external_id.as_str();
    if id.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_EXTERNAL_ID_LEN {
        return Err(format!(
            "is longer than the {MAX_EXTERNAL_ID_LEN} bytes allowed"
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters (such as U+0000)".into());
    }
    match r.system {
        crate::domain::SystemId::Github => github::refs::check(id),
        _ => Ok(()),
    }
}

/// The name used in errors about the body as a whole.
const ROOT: &str = "payload";

/// Parses a body that must be one JSON object. serde_json bounds nesting (128 levels)
/// and rejects invalid UTF-8, so no input can overflow the stack or panic here.
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, PayloadError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    object(body, value)
}

/// `parse_object` keeping only what `keep` names (`pruned`): for the large deliveries
/// of which a parser reads a few fields.
pub(crate) fn parse_object_keeping(
    body: &[u8],
    keep: &pruned::Keep,
) -> Result<Value, PayloadError> {
    // What is skipped is not decoded, so the whole body is checked to be UTF-8 first,
    // as a full parse would (and PostgreSQL, storing it, will).
    let text = std::str::from_utf8(body)
        .map_err(|e| PayloadError::Json(format!("the body is not UTF-8: {e}")))?;
    let value = pruned::parse(text, keep).map_err(|e| PayloadError::Json(e.to_string()))?;
    object(body, value)
}

fn object(body: &[u8], mut value: Value) -> Result<Value, PayloadError> {
    // JSON may carry U+0000 (`\u0000`); PostgreSQL text and jsonb cannot hold it, so a
    // delivery accepted with one would fail when applied. What statsync reads from the
    // body (titles, summaries, names) gets U+FFFD instead; the stored body is untouched.
    // memmem: a byte-by-byte window over a 14 KB body cost more than parsing it.
    if memchr::memmem::find(body, NUL_ESCAPE).is_some() {
        storable(&mut value);
    }
    if value.is_object() {
        Ok(value)
    } else {
        Err(PayloadError::invalid(
            ROOT,
            format!("expected a JSON object, found {}", kind_of(&value)),
        ))
    }
}

const NUL_ESCAPE: &[u8] = b"\\u0000";

/// Replaces U+0000 in every string and key of `value` with U+FFFD.
fn storable(value: &mut Value) {
    let clean = |s: &str| s.replace('\0', "\u{FFFD}");
    match value {
        Value::String(s) if s.contains('\0') => *s = clean(s),
        Value::Array(items) => items.iter_mut().for_each(storable),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (clean(&k), v))
                    .collect();
            }
            map.values_mut().for_each(storable);
        }
        _ => {}
    }
}

/// The value at a dotted `path`: `Ok(None)` when it, or an object on the way to it, is
/// absent or null; `Invalid` when something on the way is not an object.
pub(crate) fn lookup<'v>(root: &'v Value, path: &str) -> Result<Option<&'v Value>, PayloadError> {
    let mut current = root;
    // Bytes of `path` walked so far, each segment with the dot after it.
    let mut walked = 0usize;
    for segment in path.split('.') {
        let Value::Object(map) = current else {
            let parent = walked
                .checked_sub(1)
                .and_then(|end| path.get(..end))
                .unwrap_or(ROOT);
            return Err(PayloadError::invalid(
                parent,
                format!("expected an object, found {}", kind_of(current)),
            ));
        };
        match map.get(segment) {
            None | Some(Value::Null) => return Ok(None),
            Some(next) => current = next,
        }
        walked = walked.saturating_add(segment.len()).saturating_add(1);
    }
    Ok(Some(current))
}

/// An optional field: absent or null is `None`, a value of the wrong type is `Invalid`.
pub(crate) fn optional<T: DeserializeOwned>(
    root: &Value,
    path: &str,
) -> Result<Option<T>, PayloadError> {
    match lookup(root, path)? {
        None => Ok(None),
        Some(value) => T::deserialize(value)
            .map(Some)
            .map_err(|e| PayloadError::invalid(path, e.to_string())),
    }
}

/// A required field: absent (or null) is `Missing(path)`.
pub(crate) fn required<T: DeserializeOwned>(root: &Value, path: &str) -> Result<T, PayloadError> {
    optional(root, path)?.ok_or_else(|| PayloadError::Missing(path.to_owned()))
}

/// A required RFC 3339 timestamp.
pub(crate) fn timestamp(root: &Value, path: &str) -> Result<DateTime<Utc>, PayloadError> {
    let text: String = required(root, path)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            PayloadError::invalid(path, format!("`{text}` is not an RFC 3339 timestamp: {e}"))
        })
}

/// A value that is an RFC 3339 timestamp, if it is one.
pub(crate) fn rfc3339(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A JSON object of the entries whose value is present: metadata stays small and has
/// no nulls in it.
pub(crate) fn metadata<const N: usize>(entries: [(&str, Option<Value>); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key.to_owned(), v)))
            .collect(),
    )
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Strategies shared by the parsers' no-panic property tests.
#[cfg(test)]
pub(crate) mod test_support {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::{Parsed, PayloadError};
    use crate::domain::StatusUpdate;

    macro_rules! fixtures {
        ($($name:literal),+ $(,)?) => {
            &[$(($name, include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/github/", $name, ".json"
            )).as_slice())),+]
        };
    }

    /// Every fixture, named `<event>.<action>` after its file.
    pub const GITHUB_FIXTURES: &[(&str, &[u8])] = fixtures![
        "issues.edited",
        "issues.labeled",
        "issues.opened",
        "issues.reopened",
        "ping",
        "projects_v2_item.edited",
        "pull_request.closed",
        "pull_request.converted_to_draft",
        "pull_request.opened",
        "pull_request.ready_for_review",
    ];

    pub const LINEAR_SENT_MS: i64 = 1_714_564_800_000; // 2024-05-01T12:00:00Z
    pub const LINEAR_ISSUE_ID: &str = "2f2a8f5e-3c6b-4c1e-9a7d-6f1c1b2e3d4a";

    /// An `Issue` `update` delivery shaped like the ones Linear sends.
    pub fn linear_issue_update() -> Value {
        json!({
            "action": "update",
            "type": "Issue",
            "createdAt": "2024-05-01T11:59:59.512Z",
            "actor": {"id": "5f6a1d9e-0c8e-4a51-9f0b-7d0f2b0d7e11", "name": "Ada Lovelace", "type": "user",
                      "email": "ada@example.com", "url": "https://linear.app/acme/profiles/ada"},
            "data": {
                "id": LINEAR_ISSUE_ID,
                "identifier": "ENG-123",
                "number": 123,
                "title": "Retry outbound writes",
                "description": null,
                "priority": 2,
                "stateId": "8c1f6a0e-1111-4b2c-9d3e-000000000002",
                "state": {"id": "8c1f6a0e-1111-4b2c-9d3e-000000000002", "name": "In Progress",
                          "type": "started", "color": "#f2c94c"},
                "teamId": "a1b2c3d4-0000-4000-8000-000000000001",
                "team": {"id": "a1b2c3d4-0000-4000-8000-000000000001", "key": "ENG", "name": "Engineering"},
                "labelIds": [],
                "createdAt": "2024-04-30T09:00:00.000Z",
                "updatedAt": "2024-05-01T11:59:59.500Z",
                "url": "https://linear.app/acme/issue/ENG-123/retry-outbound-writes"
            },
            "updatedFrom": {"stateId": "8c1f6a0e-1111-4b2c-9d3e-000000000001",
                            "updatedAt": "2024-05-01T10:00:00.000Z"},
            "url": "https://linear.app/acme/issue/ENG-123/retry-outbound-writes",
            "organizationId": "0f0e0d0c-0000-4000-8000-00000000000a",
            "webhookTimestamp": LINEAR_SENT_MS,
            "webhookId": "3d3c3b3a-0000-4000-8000-0000000000ff"
        })
    }

    /// An agent report with every field set.
    pub fn agent_report() -> Value {
        json!({
            "taskId": "task_01HXYZ",
            "state": "working",
            "summary": "Reproduced the bug; writing a fix",
            "link": "https://agents.example.com/tasks/task_01HXYZ",
            "issue": "ENG-123",
            "timestamp": "2024-05-01T12:00:00Z"
        })
    }

    /// Any JSON value, a few levels deep, with the awkward numbers included.
    pub fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
            Just(Value::String("2024-02-30T25:61:00Z".into())),
            Just(Value::String("2024-05-01T12:00:00Z".into())),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-zA-Z_]{1,12}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Text that looks like JSON often enough to reach past the parser.
    pub fn jsonish() -> impl Strategy<Value = String> {
        r#"[\[\]{}":,0-9a-zA-Z_ .#/\-eE+\\]{0,200}"#
    }

    /// The only update of a delivery that must have exactly one.
    pub fn one(parsed: Result<Parsed, PayloadError>) -> StatusUpdate {
        match parsed {
            Ok(Parsed::Updates(mut updates)) if updates.len() == 1 => updates.remove(0),
            other => panic!("expected one update, got {other:?}"),
        }
    }

    /// An edit for [`edited`]: put `value` at `path`.
    pub fn set(path: &str, value: Value) -> (&str, Option<Value>) {
        (path, Some(value))
    }

    /// `base` with every edit applied (`None` removes the field).
    pub fn edited(base: Value, edits: &[(&str, Option<Value>)]) -> Vec<u8> {
        let value = edits
            .iter()
            .fold(base, |v, (path, new)| with_field(&v, path, new.clone()));
        serde_json::to_vec(&value).unwrap()
    }

    /// The field an `Invalid` error names.
    pub fn invalid_field(err: PayloadError) -> String {
        match err {
            PayloadError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    pub fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
    }

    /// `base` with the value at one dotted path replaced (or removed, for `None`).
    pub fn with_field(base: &Value, path: &str, replacement: Option<Value>) -> Value {
        let mut out = base.clone();
        let mut current = &mut out;
        let segments: Vec<&str> = path.split('.').collect();
        for (i, segment) in segments.iter().enumerate() {
            let Value::Object(map) = current else {
                return out;
            };
            if i + 1 == segments.len() {
                match replacement {
                    Some(v) => {
                        map.insert((*segment).to_owned(), v);
                    }
                    None => {
                        map.remove(*segment);
                    }
                }
                return out;
            }
            current = map
                .entry((*segment).to_owned())
                .or_insert_with(|| Value::Object(Default::default()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_names_the_dotted_path_of_a_missing_field() {
        let v = json!({"pull_request": {"title": "x"}});
        assert_eq!(
            required::<u64>(&v, "pull_request.number"),
            Err(PayloadError::Missing("pull_request.number".into()))
        );
        assert_eq!(
            required::<u64>(&v, "repository.full_name"),
            Err(PayloadError::Missing("repository.full_name".into()))
        );
    }

    #[test]
    fn a_wrong_type_is_invalid_and_names_the_field() {
        let v = json!({"pull_request": {"number": "two"}, "repository": "x"});
        let err = required::<u64>(&v, "pull_request.number").unwrap_err();
        assert!(
            matches!(&err, PayloadError::Invalid { field, why } if field == "pull_request.number" && why.contains("invalid type")),
            "{err}"
        );
        assert_eq!(
            required::<String>(&v, "repository.full_name"),
            Err(PayloadError::invalid(
                "repository",
                "expected an object, found a string"
            ))
        );
    }

    #[test]
    fn null_optional_fields_are_none() {
        let v = json!({"pull_request": {"body": null}, "issue": null});
        assert_eq!(optional::<String>(&v, "pull_request.body"), Ok(None));
        assert_eq!(optional::<String>(&v, "issue.state_reason"), Ok(None));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_rejected() {
        assert_eq!(
            parse_object(b"[1,2]"),
            Err(PayloadError::invalid(
                "payload",
                "expected a JSON object, found an array"
            ))
        );
        let err = parse_object(b"{\"a\":").unwrap_err();
        assert!(err.to_string().contains("line 1 column 5"), "{err}");
        assert_eq!(err.code(), "MALFORMED_JSON");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_object(deep.as_bytes()),
            Err(PayloadError::Json(_))
        ));
    }

    #[test]
    fn timestamps_must_be_rfc3339() {
        let v = json!({"a": {"t": "yesterday"}, "b": "2024-05-01T12:00:00+02:00"});
        assert!(matches!(
            timestamp(&v, "a.t"),
            Err(PayloadError::Invalid { field, .. }) if field == "a.t"
        ));
        assert_eq!(
            timestamp(&v, "b").unwrap().to_rfc3339(),
            "2024-05-01T10:00:00+00:00"
        );
    }

    mod no_input_panics {
        use super::super::test_support::jsonish;
        use super::super::{a2a, agentapi, github, linear};
        use proptest::prelude::*;

        fn parse_all(body: &[u8]) {
            for event in ["issues", "pull_request", "projects_v2_item", "ping"] {
                let _ = github::webhook::parse(event, body);
            }
            let _ = linear::webhook::parse(body);
            let _ = agentapi::webhook::parse(body);
            let reading = a2a::notification::Reading {
                default_agent: Some("coder".into()),
                teams: vec!["ENG".into()],
            };
            let _ = a2a::notification::parse(body, &reading);
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
                parse_all(&body);
            }

            #[test]
            fn jsonish_text_never_panics(body in jsonish()) {
                parse_all(body.as_bytes());
            }
        }
    }
}
