//! A2A push notifications (`POST /webhooks/a2a`) turned into `StatusUpdate`s.
//!
//! Follows the A2A specification 1.0.1 (a2aproject/A2A, `docs/specification.md` §4.3.3
//! and `specification/a2a.proto`): the body is a `StreamResponse` holding exactly one of
//! `task`, `statusUpdate`, `message` or `artifactUpdate`, enums in their ProtoJSON names
//! (`TASK_STATE_WORKING`). The 0.3 form many SDKs still send is read too (Appendix A.2.1):
//! the object itself with a `kind` discriminator (`"status-update"`, `"task"`) and
//! kebab-case states (`"input-required"`). Only task status is read: a message or an
//! artifact says nothing about it and is answered `ignored`.
//! Never panics on any input, never does I/O, never reads a clock.

use serde_json::{Map, Value};

use crate::domain::linking::{self, LinkingRules, Texts};
use crate::domain::{EntityKind, ExternalRef, NativeStatus, StatusUpdate, SystemId, UpdateAction};
use crate::systems::agentapi::webhook::{issue_ref_at, project_of};
use crate::systems::{check_ref, metadata, optional, parse_object, required, rfc3339};
use crate::systems::{Parsed, PayloadError};

/// The metadata key naming the Linear issue or GitHub ref a task works on.
pub const REF_KEY: &str = "statsync.ref";
/// The metadata key naming the agent (of `connectors.a2a.agents`) a task runs on.
pub const AGENT_KEY: &str = "statsync.agent";

/// Every task state, as statsync names it in `[a2a.states]` (the 0.3 wire spelling),
/// with its 1.0 ProtoJSON name.
pub const STATES: [(&str, &str); 8] = [
    ("submitted", "TASK_STATE_SUBMITTED"),
    ("working", "TASK_STATE_WORKING"),
    ("input-required", "TASK_STATE_INPUT_REQUIRED"),
    ("auth-required", "TASK_STATE_AUTH_REQUIRED"),
    ("completed", "TASK_STATE_COMPLETED"),
    ("failed", "TASK_STATE_FAILED"),
    ("canceled", "TASK_STATE_CANCELED"),
    ("rejected", "TASK_STATE_REJECTED"),
];

/// What parsing needs of the settings: which agent a task that names none runs on, and
/// the Linear teams whose identifiers in a task's text link it.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub default_agent: Option<String>,
    /// Upper case; empty: text is not read for identifiers.
    pub teams: Vec<String>,
}

/// The object a notification is about, wherever its form puts it.
struct Found<'a> {
    /// The dotted path of `object` in the body, for errors: `statusUpdate`, `task`, or
    /// empty for the 0.3 form, whose object is the body itself.
    at: &'static str,
    object: &'a Value,
    /// `taskId` of a status update, `id` of a task.
    id_field: &'static str,
}

/// Parses one notification.
pub fn parse(body: &[u8], reading: &Reading) -> Result<Parsed, PayloadError> {
    let root = parse_object(body)?;
    let found = match locate(&root)? {
        Ok(found) => found,
        Err(reason) => return Ok(Parsed::Ignored { reason }),
    };
    let field = |name: &str| match found.at {
        "" => name.to_owned(),
        at => format!("{at}.{name}"),
    };
    let task_id: String = required(found.object, found.id_field).map_err(|e| at(&found, e))?;
    let Some(state) = state_of(found.object).map_err(|e| at(&found, e))? else {
        return Ok(Parsed::Ignored {
            reason: "the agent reports the task's state as unknown".into(),
        });
    };
    let source_timestamp =
        match optional::<Value>(found.object, "status.timestamp").map_err(|e| at(&found, e))? {
            None => StatusUpdate::UNTIMED,
            Some(v) => rfc3339(&v).ok_or_else(|| {
                PayloadError::invalid(&field("status.timestamp"), "expected an RFC 3339 timestamp")
            })?,
        };
    let said = Said::of(found.object);
    let agent = said.text(AGENT_KEY, &field)?;
    let target = task_ref(&task_id, agent.as_ref(), reading, &field)?;
    let links = match said.text(REF_KEY, &field)? {
        Some((text, path)) => vec![issue_ref_at(&path, &text)?],
        None => said.named_issue(reading).into_iter().collect(),
    };
    let project = links.first().and_then(project_of);
    Ok(Parsed::Updates(vec![StatusUpdate {
        source: SystemId::A2a,
        target,
        aliases: Vec::new(),
        links,
        kind: EntityKind::Task,
        action: UpdateAction::Status {
            native: NativeStatus::Named {
                system: SystemId::A2a,
                name: state.to_owned(),
            },
        },
        source_timestamp,
        project,
        // An agent's report never reopens finished work by itself.
        explicit: false,
        title: None,
        body: None,
        metadata: metadata([
            (
                "contextId",
                optional::<String>(found.object, "contextId")
                    .ok()
                    .flatten()
                    .map(Value::from),
            ),
            ("agent", agent.map(|(name, _)| Value::from(name))),
            ("summary", said.status_text().map(Value::from)),
        ]),
    }]))
}

/// Where the task status is, by the body's form; `Err(reason)` for a well-formed
/// notification that carries none.
fn locate(root: &Value) -> Result<Result<Found<'_>, String>, PayloadError> {
    const STATUS_UPDATE: &str = "statusUpdate";
    for (key, at, id_field) in [
        (STATUS_UPDATE, STATUS_UPDATE, "taskId"),
        ("task", "task", "id"),
    ] {
        if let Some(object) = root.get(key).filter(|v| !v.is_null()) {
            if !object.is_object() {
                return Err(PayloadError::invalid(key, "expected an object"));
            }
            return Ok(Ok(Found {
                at,
                object,
                id_field,
            }));
        }
    }
    for key in ["message", "artifactUpdate"] {
        if root.get(key).is_some_and(|v| !v.is_null()) {
            return Ok(Err(format!("a `{key}` says nothing of a task's status")));
        }
    }
    let found = |id_field| {
        Ok(Ok(Found {
            at: "",
            object: root,
            id_field,
        }))
    };
    match optional::<String>(root, "kind")?.as_deref() {
        Some("status-update") => found("taskId"),
        Some("task") => found("id"),
        Some(kind @ ("artifact-update" | "message")) => {
            Ok(Err(format!("a `{kind}` says nothing of a task's status")))
        }
        Some(other) => Err(PayloadError::invalid(
            "kind",
            format!("`{other}` is not an A2A event kind; expected status-update or task"),
        )),
        // Without a discriminator, the fields tell: 0.3 senders that leave `kind` out.
        None if root.get("taskId").is_some() && root.get("status").is_some() => found("taskId"),
        None if root.get("id").is_some() && root.get("status").is_some() => found("id"),
        None => Err(PayloadError::invalid(
            "payload",
            "expected an A2A StreamResponse (`statusUpdate` or `task`, A2A 1.0) or an event \
             with `kind` (A2A 0.3)",
        )),
    }
}

/// An error inside the found object, named by its path in the body.
fn at(found: &Found<'_>, e: PayloadError) -> PayloadError {
    if found.at.is_empty() {
        return e;
    }
    match e {
        PayloadError::Missing(f) => PayloadError::Missing(format!("{}.{f}", found.at)),
        PayloadError::Invalid { field, why } => PayloadError::Invalid {
            field: format!("{}.{field}", found.at),
            why,
        },
        other => other,
    }
}

/// The state as `[a2a.states]` names it; `None` for the unknown state.
fn state_of(object: &Value) -> Result<Option<&'static str>, PayloadError> {
    let text: String = required(object, "status.state")?;
    if matches!(text.as_str(), "unknown" | "TASK_STATE_UNSPECIFIED") {
        return Ok(None);
    }
    STATES
        .iter()
        .find(|(name, proto)| *name == text || *proto == text)
        .map(|(name, _)| Some(*name))
        .ok_or_else(|| {
            let valid: Vec<&str> = STATES.iter().map(|(_, proto)| *proto).collect();
            PayloadError::invalid(
                "status.state",
                format!(
                    "`{text}` is not a task state; expected one of: {} (or their A2A 0.3 \
                     names: submitted, working, input-required, …)",
                    valid.join(", ")
                ),
            )
        })
}

/// The task's ref: its id, qualified by its agent when that is not the default one.
fn task_ref(
    task_id: &str,
    agent: Option<&(String, String)>,
    reading: &Reading,
    field: &dyn Fn(&str) -> String,
) -> Result<ExternalRef, PayloadError> {
    let external_id = match agent {
        Some((name, path)) => {
            if !valid_agent_name(name) {
                return Err(PayloadError::invalid(
                    path,
                    "an agent name is 1 to 64 letters, digits, `_`, `-` or `.`",
                ));
            }
            match reading.default_agent.as_deref() == Some(name.as_str()) {
                true => task_id.to_owned(),
                false => format!("{name}/{task_id}"),
            }
        }
        None => task_id.to_owned(),
    };
    let r = ExternalRef::new(SystemId::A2a, external_id);
    check_ref(&r).map_err(|why| PayloadError::invalid(&field("taskId"), why))?;
    Ok(r)
}

/// What an agent name may be: it becomes part of a task's external id.
pub fn valid_agent_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The places a notification says things in, nearest first: its own metadata, its
/// status message, then (a task) the messages of its history.
struct Said<'a> {
    /// `(path, metadata object)`.
    metadata: Vec<(String, &'a Map<String, Value>)>,
    status_message: Option<&'a Value>,
    history: Vec<&'a Value>,
}

impl<'a> Said<'a> {
    fn of(object: &'a Value) -> Said<'a> {
        let status_message = object.pointer("/status/message").filter(|m| m.is_object());
        let history: Vec<&Value> = object
            .get("history")
            .and_then(Value::as_array)
            .map(|h| h.iter().filter(|m| m.is_object()).collect())
            .unwrap_or_default();
        let mut metadata = Vec::new();
        let mut add = |path: String, v: Option<&'a Value>| {
            if let Some(m) = v.and_then(Value::as_object) {
                metadata.push((path, m));
            }
        };
        add("metadata".into(), object.get("metadata"));
        add(
            "status.message.metadata".into(),
            status_message.and_then(|m| m.get("metadata")),
        );
        for (i, m) in history.iter().enumerate() {
            add(format!("history.{i}.metadata"), m.get("metadata"));
        }
        Said {
            metadata,
            status_message,
            history,
        }
    }

    /// The first string under `key` (a flat `"statsync.ref"` key, or nested
    /// `{"statsync": {"ref": …}}`), with its path in the body.
    fn text(
        &self,
        key: &str,
        field: &dyn Fn(&str) -> String,
    ) -> Result<Option<(String, String)>, PayloadError> {
        let (outer, inner) = key.split_once('.').unwrap_or((key, ""));
        for (path, map) in &self.metadata {
            let value = map
                .get(key)
                .or_else(|| map.get(outer).and_then(|o| o.get(inner)));
            let path = field(&format!("{path}.{key}"));
            match value {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    return Ok(Some((s.trim().to_owned(), path)))
                }
                Some(_) => return Err(PayloadError::invalid(&path, "expected a non-empty string")),
            }
        }
        Ok(None)
    }

    /// The first Linear issue of a known team the messages' texts name.
    fn named_issue(&self, reading: &Reading) -> Option<ExternalRef> {
        if reading.teams.is_empty() {
            return None;
        }
        let known = |team: &str| reading.teams.iter().any(|t| t == team);
        let rules = LinkingRules::default();
        self.status_message
            .into_iter()
            .chain(self.history.iter().copied())
            .flat_map(texts_of)
            .find_map(|text| {
                let texts = Texts {
                    body: Some(text),
                    ..Texts::default()
                };
                linking::find_references(&rules, texts, known)
                    .into_iter()
                    .next()
            })
            .map(|r| ExternalRef::new(SystemId::Linear, r.identifier))
    }

    /// The status message's text, bounded: kept as the update's `summary`.
    fn status_text(&self) -> Option<String> {
        const MAX: usize = 500;
        let text = self
            .status_message
            .map(texts_of)
            .unwrap_or_default()
            .join("\n");
        let text = text.trim();
        match text.char_indices().nth(MAX) {
            _ if text.is_empty() => None,
            Some((cut, _)) => Some(format!("{}…", &text[..cut])),
            None => Some(text.to_owned()),
        }
    }
}

/// The text parts of a message: `{"text": …}` in 1.0, `{"kind":"text","text": …}` in 0.3.
fn texts_of(message: &Value) -> Vec<&str> {
    message
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
