//! Telling an A2A agent that work it runs is over: `CancelTask` (A2A 1.0, §9.4.5) or
//! `tasks/cancel` (0.3) over JSON-RPC 2.0 to the agent's endpoint, with `A2A_API_TOKEN`
//! as its Bearer credential. A2A has no call that sets a task to any other state, so
//! every other status is a recorded no-op. Never retries by itself and never logs the
//! token; JSON-RPC errors are classified into `OutboundError` codes here.

use std::collections::BTreeMap;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::domain::CanonicalStatus;
use crate::systems::limiter::Budget;
use crate::systems::outbound::{
    classify_status, excerpt, exchange, retry_after, time_at, Delivered, ErrorCode, OutboundError,
    OutboundWrite, RateInfo, Written,
};

/// The JSON-RPC binding an agent speaks: its method names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// A2A 1.0: PascalCase methods (`CancelTask`), `A2A-Version: 1.0`.
    #[default]
    V1,
    /// A2A 0.3: `tasks/cancel`.
    V03,
}

impl<'de> serde::Deserialize<'de> for Protocol {
    // By hand: `"1.0"` in a file, but `1.0` (a number) from an environment variable,
    // which the settings loader parses.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Version;
        impl serde::de::Visitor<'_> for Version {
            type Value = Protocol;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an A2A version: \"1.0\" or \"0.3\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Protocol, E> {
                match v.trim() {
                    "1.0" | "1" => Ok(Protocol::V1),
                    "0.3" => Ok(Protocol::V03),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Protocol, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Protocol, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Protocol, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(Version)
    }
}

/// One agent statsync may call.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Its JSON-RPC endpoint (the agent card's interface URL for JSON-RPC).
    pub url: String,
    #[serde(default)]
    pub protocol: Protocol,
}

pub struct A2aClient {
    pub(super) http: reqwest::Client,
    pub(super) budget: Budget,
    pub(super) agents: BTreeMap<String, Agent>,
    /// The agent of a task whose id names none.
    pub(super) default_agent: Option<String>,
    /// The statuses that cancel a linked task.
    pub(super) cancel_on: Vec<CanonicalStatus>,
    pub(super) token: Option<SecretString>,
}

/// JSON-RPC error codes (A2A 1.0 §5.4 and §9.5).
const TASK_NOT_FOUND: i64 = -32001;
const TASK_NOT_CANCELABLE: i64 = -32002;
const METHOD_NOT_FOUND: i64 = -32601;
const INTERNAL_ERROR: i64 = -32603;

impl A2aClient {
    pub async fn write(&self, w: &OutboundWrite) -> Result<Delivered, OutboundError> {
        let noop = |why: String| Delivered {
            written: Written::Noop(why),
            rate: RateInfo::default(),
            object_updated_at: None,
        };
        if !self.cancel_on.contains(&w.status) {
            return Ok(noop(format!(
                "A2A has no call that moves a task to {}: an agent is told only of {} \
                 (CancelTask)",
                w.status,
                self.cancel_on_text()
            )));
        }
        let (name, task_id) = self.route(&w.external_id);
        let Some(agent) = name.and_then(|n| self.agents.get(n)) else {
            return Ok(noop(format!(
                "no A2A agent `{}` is configured (connectors.a2a.agents): it is not told",
                name.unwrap_or("(default)")
            )));
        };
        let method = match agent.protocol {
            Protocol::V1 => "CancelTask",
            Protocol::V03 => "tasks/cancel",
        };
        let request = json!({
            "jsonrpc": "2.0",
            "id": format!("{}-{}", w.operation_id, w.outbox_id),
            "method": method,
            "params": {"id": task_id},
        });
        self.budget.acquire().await?;
        let mut call = self
            .http
            .post(&agent.url)
            .header("Content-Type", "application/json")
            .json(&request);
        if agent.protocol == Protocol::V1 {
            call = call.header("A2A-Version", "1.0");
        }
        if let Some(token) = &self.token {
            call = call.bearer_auth(token.expose_secret());
        }
        let answer = exchange(call).await?;
        let rate = RateInfo::github(&answer.headers);
        if let Some(code) = classify_status(answer.status) {
            return Err(OutboundError {
                code,
                message: format!(
                    "agent `{}` answered {}: {}",
                    name.unwrap_or_default(),
                    answer.status,
                    excerpt(&answer.body)
                ),
                retry_after: retry_after(&answer.headers, Utc::now()),
                rate,
            });
        }
        outcome(method, &answer.body, rate)
    }

    /// The agent a task's external id names and the task's own id: `agent/id`, or a
    /// bare id of the default agent.
    fn route<'a>(&'a self, external_id: &'a str) -> (Option<&'a str>, &'a str) {
        match external_id.split_once('/') {
            Some((agent, task)) if self.agents.contains_key(agent) => (Some(agent), task),
            _ => (self.default_agent.as_deref(), external_id),
        }
    }

    fn cancel_on_text(&self) -> String {
        let names: Vec<&str> = self.cancel_on.iter().map(|s| s.as_str()).collect();
        match names.is_empty() {
            true => "nothing (connectors.a2a.cancel_on is empty)".into(),
            false => names.join(" and "),
        }
    }
}

/// What a JSON-RPC answer (HTTP 2xx) to a cancel means.
fn outcome(method: &str, body: &[u8], rate: RateInfo) -> Result<Delivered, OutboundError> {
    let fail = |code, message: String| OutboundError {
        code,
        message,
        retry_after: None,
        rate: rate.clone(),
    };
    let answer: Value = serde_json::from_slice(body).map_err(|_| {
        // InvalidAgentResponseError maps to HTTP 500 (§5.4): the agent's fault, and
        // perhaps a proxy's passing one, so it is retried.
        fail(
            ErrorCode::Upstream5xx,
            format!("the agent's answer is not JSON: {}", excerpt(body)),
        )
    })?;
    if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        let said = format!("the agent answered JSON-RPC error {code}: {message}");
        return match code {
            // The task is already over (completed, failed, canceled, rejected): what the
            // cancel was for holds, and nothing is left to retry.
            TASK_NOT_CANCELABLE => Ok(Delivered {
                written: Written::Noop(format!("the task is already over ({said})")),
                rate,
                object_updated_at: None,
            }),
            TASK_NOT_FOUND => Err(fail(ErrorCode::NotFound, said)),
            METHOD_NOT_FOUND => Err(fail(
                ErrorCode::ValidationFailed,
                format!(
                    "{said}; the agent does not know `{method}`: set its `protocol` in \
                     connectors.a2a.agents (\"1.0\": CancelTask, \"0.3\": tasks/cancel)"
                ),
            )),
            INTERNAL_ERROR => Err(fail(ErrorCode::Upstream5xx, said)),
            _ => Err(fail(ErrorCode::ValidationFailed, said)),
        };
    }
    match answer.get("result").filter(|r| r.is_object()) {
        Some(task) => Ok(Delivered {
            written: Written::Done,
            // The task's status time after the cancel: the time its notification about
            // this cancel carries, so that notification is recognised as the echo.
            object_updated_at: time_at(task, "/status/timestamp"),
            rate,
        }),
        None => Err(fail(
            ErrorCode::Upstream5xx,
            format!(
                "the agent's answer has neither `result` nor `error`: {}",
                excerpt(body)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(body: Value) -> Result<Delivered, OutboundError> {
        outcome(
            "CancelTask",
            &serde_json::to_vec(&body).unwrap(),
            RateInfo::default(),
        )
    }

    fn error(code: i64) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "m"}})
    }

    #[test]
    fn a_canceled_task_is_written_with_its_status_time() {
        let got = classify(json!({"jsonrpc": "2.0", "id": 1, "result": {
            "id": "t-1", "status": {"state": "TASK_STATE_CANCELED", "timestamp": "2026-01-02T03:04:05Z"}
        }}))
        .unwrap();
        assert_eq!(got.written, Written::Done);
        assert_eq!(
            got.object_updated_at.unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn json_rpc_errors_are_classified() {
        let noop = classify(error(TASK_NOT_CANCELABLE)).unwrap();
        assert!(matches!(noop.written, Written::Noop(ref why) if why.contains("-32002")));
        let code = |c| classify(error(c)).unwrap_err().code;
        assert_eq!(code(TASK_NOT_FOUND), ErrorCode::NotFound);
        assert_eq!(code(METHOD_NOT_FOUND), ErrorCode::ValidationFailed);
        assert_eq!(code(-32602), ErrorCode::ValidationFailed);
        assert_eq!(code(INTERNAL_ERROR), ErrorCode::Upstream5xx);
        let not_json = outcome("CancelTask", b"<html>", RateInfo::default()).unwrap_err();
        assert_eq!(not_json.code, ErrorCode::Upstream5xx);
        let empty = classify(json!({"jsonrpc": "2.0", "id": 1})).unwrap_err();
        assert_eq!(empty.code, ErrorCode::Upstream5xx);
        assert!(!ErrorCode::NotFound.retryable() && ErrorCode::Upstream5xx.retryable());
    }
}
