//! What the WebSocketManager exchanges with WebSocket sessions and SSE streams: the
//! messages they send it and what it sends each subscriber.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::store::events::Event;

pub type SubscriberId = u64;

/// One logged event on its way to subscribers: serialized once, however many
/// subscribers (WebSocket or SSE) receive it.
#[derive(Debug, Clone)]
pub struct SharedEvent {
    pub event: Event,
    json: std::sync::OnceLock<String>,
    ws_frame: std::sync::OnceLock<String>,
}

impl SharedEvent {
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(SharedEvent {
            event,
            json: Default::default(),
            ws_frame: Default::default(),
        })
    }

    /// The event's JSON (DESIGN.md, Events).
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.event).unwrap_or_default())
    }

    /// The WebSocket protocol's `{"type":"event","event":…}` message.
    pub fn ws_frame(&self) -> &str {
        self.ws_frame
            .get_or_init(|| format!("{{\"type\":\"event\",\"event\":{}}}", self.json()))
    }
}

/// What a subscriber is sent. Events are shared: one copy serves every subscriber.
pub enum Outgoing {
    Subscribed {
        rooms: Vec<String>,
        seq: i64,
    },
    Event(Arc<SharedEvent>),
    Error {
        code: &'static str,
        message: String,
    },
    /// The replica is stopping: close (WebSocket 1001), the client resumes elsewhere.
    Shutdown,
}

/// Register a subscriber; its buffer is `sink`'s capacity.
#[derive(Message)]
#[rtype(result = "SubscriberId")]
pub struct Connect {
    pub sink: mpsc::Sender<Outgoing>,
}

/// The subscriber is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub id: SubscriberId,
}

/// Join rooms; with `resume_from`, first every logged event after it in those rooms.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub id: SubscriberId,
    pub rooms: Vec<String>,
    pub resume_from: Option<i64>,
}

/// The replica is stopping: tell every subscriber and let them go.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Leave rooms.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub id: SubscriberId,
    pub rooms: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_event_renders_the_protocol_message_once_for_everyone() {
        let event = Event {
            seq: 7,
            id: uuid::Uuid::new_v4(),
            event_type: "status_changed".into(),
            entity_id: None,
            rooms: vec!["all".into()],
            timestamp: chrono::Utc::now(),
            data: serde_json::json!({"to": "done", "quote": "a \"b\""}),
        };
        let shared = SharedEvent::new(event.clone());
        let frame: serde_json::Value = serde_json::from_str(shared.ws_frame()).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"type": "event", "event": serde_json::to_value(&event).unwrap()})
        );
        // the same bytes for every subscriber
        assert!(std::ptr::eq(shared.ws_frame(), shared.ws_frame()));
    }
}
