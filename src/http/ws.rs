//! `GET /ws`: one thin session actor per connection (DESIGN.md, WebSocket protocol).
//! It authenticates, limits and parses what the client says; rooms, resume and fan-out
//! live in the WebSocketManager. A token is never taken from the URL (URLs get logged).

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::auth::token_matches;
use super::connections::{Refused, Slot, UnauthenticatedSlot};
use super::errors::ApiError;
use super::AppState;
use crate::actors::websocket_manager::{
    Connect, Disconnect, Outgoing, Subscribe, SubscriberId, Unsubscribe, WebSocketManager,
};

const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_FRAME_BYTES: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(upgrade));
}

/// The replica's answer when `ws.max_connections` are taken.
pub(super) fn full(max: usize) -> ApiError {
    ApiError::Unavailable {
        message: format!(
            "this replica holds its maximum of {max} WebSocket connections and SSE streams \
             (ws.max_connections)"
        ),
        retry_after_s: 5,
    }
}

async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let settings = &state.settings;
    let origins = &settings.ws.allowed_origins;
    if let Some(origin) = req.headers().get("origin") {
        let origin = origin.to_str().unwrap_or_default();
        if !origins.is_empty() && !origins.iter().any(|o| o == origin) {
            return Err(ApiError::Forbidden(format!(
                "Origin `{origin}` is not in ws.allowed_origins"
            ))
            .into());
        }
    }
    // A header that is present must be right; without one, the first message may carry
    // the token.
    let slot = match req.headers().get("authorization") {
        Some(h) => {
            let token = h
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::Unauthorized("`Authorization` must be `Bearer <token>`".into())
                })?;
            if !token_matches(token, &settings.secrets.api_tokens) {
                return Err(ApiError::Unauthorized("invalid token".into()).into());
            }
            SessionSlot::Authenticated(
                state
                    .ws_connections
                    .acquire(settings.ws.max_connections)
                    .ok_or_else(|| full(settings.ws.max_connections))?,
            )
        }
        None => {
            let ws = &settings.ws;
            let address = req.peer_addr().map(|a| a.ip());
            let slot = state
                .ws_connections
                .acquire_unauthenticated(
                    address,
                    ws.max_unauthenticated,
                    ws.max_unauthenticated_per_address,
                )
                .map_err(|refused| ApiError::Unavailable {
                    message: match refused {
                        Refused::Total => format!(
                            "{} WebSocket connections are waiting to authenticate \
                             (ws.max_unauthenticated); authenticate on the upgrade \
                             with `Authorization: Bearer`",
                            ws.max_unauthenticated
                        ),
                        Refused::Address => format!(
                            "{} WebSocket connections from this address are waiting to \
                             authenticate (ws.max_unauthenticated_per_address)",
                            ws.max_unauthenticated_per_address
                        ),
                    },
                    retry_after_s: 1,
                })?;
            SessionSlot::Unauthenticated(slot)
        }
    };
    let session = Session {
        manager: state.ws.clone(),
        state: state.clone(),
        id: None,
        last_heard: Instant::now(),
        window: (Instant::now(), 0),
        closing: false,
        slot,
    };
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_FRAME_BYTES)
        .start()
}

/// The budget a session spends, given back when it is dropped (so never read); its kind
/// says whether the session has authenticated.
enum SessionSlot {
    Unauthenticated(#[allow(dead_code)] UnauthenticatedSlot),
    Authenticated(#[allow(dead_code)] Slot),
}

/// What a client may say.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum ClientMessage {
    Auth {
        token: String,
    },
    #[serde(rename_all = "camelCase")]
    Subscribe {
        rooms: Vec<String>,
        resume_from: Option<i64>,
    },
    Unsubscribe {
        rooms: Vec<String>,
    },
    Ping,
}

struct Session {
    manager: Addr<WebSocketManager>,
    state: web::Data<AppState>,
    /// Set once registered with the manager.
    id: Option<SubscriberId>,
    last_heard: Instant,
    /// Start of the current one-second window and the messages heard in it.
    window: (Instant, u32),
    /// We are closing on purpose; the end of the manager's stream is then expected.
    closing: bool,
    slot: SessionSlot,
}

impl Session {
    fn error(ctx: &mut ws::WebsocketContext<Self>, code: &str, message: &str) {
        ctx.text(json!({"type": "error", "code": code, "message": message}).to_string());
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: ws::CloseCode, why: &str) {
        self.closing = true;
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(why.to_owned()),
        }));
        ctx.stop();
    }

    /// Closes on the server's initiative, counted in `statsync_ws_dropped_total{reason}`.
    /// Tells the client why (an `UNAUTHORIZED` error) and closes with 1008.
    fn refuse_unauthenticated(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        message: &str,
        close_reason: &'static str,
    ) {
        Self::error(ctx, "UNAUTHORIZED", message);
        self.drop_client(ctx, "unauthenticated", ws::CloseCode::Policy, close_reason);
    }

    fn drop_client(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        reason: &'static str,
        code: ws::CloseCode,
        why: &str,
    ) {
        let dropped = &self.state.sync.metrics().streams.ws_dropped;
        dropped.with_label_values(&[reason]).inc();
        self.close(ctx, code, why);
    }

    /// Registers with the manager; its messages come back as a stream on this actor.
    fn register(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let (sink, rx) = mpsc::channel(self.state.settings.ws.send_buffer);
        ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }));
        self.manager
            .send(Connect { sink })
            .into_actor(self)
            .map(|id, act, ctx| match id {
                Ok(id) => act.id = Some(id),
                Err(_) => act.close(ctx, ws::CloseCode::Error, "the event stream is not running"),
            })
            .wait(ctx);
    }

    fn authenticated(&self) -> bool {
        matches!(self.slot, SessionSlot::Authenticated(_))
    }

    /// Counts one frame the client sent against `ws.messages_per_second`, whatever its
    /// kind: false when over, the client then told or, far over, closed.
    fn admit(&mut self, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 = self.window.1.saturating_add(1);
        let limit = self.state.settings.ws.messages_per_second;
        if self.window.1 <= limit {
            return true;
        }
        // Far over the limit is abuse, not burstiness: close rather than answer each.
        if self.window.1 > limit.saturating_mul(5) {
            self.drop_client(
                ctx,
                "rate_limited",
                ws::CloseCode::Policy,
                "message rate limit exceeded",
            );
        } else {
            let msg = format!("at most {limit} messages per second (ws.messages_per_second)");
            Self::error(ctx, "RATE_LIMITED", &msg);
        }
        false
    }

    /// The token was right: the session moves from the unauthenticated budget to
    /// `ws.max_connections`, or is closed with 1013 (try again later) when that is full.
    fn authenticate(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let max = self.state.settings.ws.max_connections;
        match self.state.ws_connections.acquire(max) {
            Some(slot) => {
                self.slot = SessionSlot::Authenticated(slot);
                self.register(ctx);
            }
            None => {
                let refusal = full(max);
                Self::error(ctx, refusal.code(), &refusal.to_string());
                self.drop_client(
                    ctx,
                    "full",
                    ws::CloseCode::Again,
                    "ws.max_connections reached",
                );
            }
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let msg = match serde_json::from_str::<ClientMessage>(text) {
            Ok(m) => m,
            Err(e) => {
                let msg = format!(
                    "not a message of the protocol ({e}); expected {{\"type\":\"auth\"|\"subscribe\"|\"unsubscribe\"|\"ping\", …}}"
                );
                return Self::error(ctx, "INVALID_MESSAGE", &msg);
            }
        };
        if !self.authenticated() {
            return match msg {
                ClientMessage::Auth { token }
                    if token_matches(&token, &self.state.settings.secrets.api_tokens) =>
                {
                    self.authenticate(ctx)
                }
                ClientMessage::Auth { .. } => {
                    self.refuse_unauthenticated(ctx, "invalid token", "invalid token")
                }
                _ => self.refuse_unauthenticated(
                    ctx,
                    "authenticate first: `Authorization: Bearer` on the upgrade or {\"type\":\"auth\",\"token\":…}",
                    "not authenticated",
                ),
            };
        }
        let Some(id) = self.id else { return };
        match msg {
            ClientMessage::Ping => ctx.text(r#"{"type":"pong"}"#),
            ClientMessage::Auth { .. } => {}
            ClientMessage::Subscribe { rooms, resume_from } => {
                match check_rooms(&rooms, self.state.settings.ws.max_rooms_per_connection) {
                    Ok(()) => self.manager.do_send(Subscribe {
                        id,
                        rooms,
                        resume_from,
                    }),
                    Err(why) => Self::error(ctx, "INVALID_ROOM", &why),
                }
            }
            ClientMessage::Unsubscribe { rooms } => self.manager.do_send(Unsubscribe { id, rooms }),
        }
    }
}

/// Rooms of DESIGN.md: `all`, `entity:<uuid>`, `project:<key>`, `system:<system>`; and
/// `alerts`, where the SyncMonitor's `alert_fired` / `alert_resolved` events go.
pub(super) fn check_rooms(rooms: &[String], max: usize) -> Result<(), String> {
    if rooms.is_empty() || rooms.len() > max {
        return Err(format!(
            "name 1 to {max} rooms (ws.max_rooms_per_connection)"
        ));
    }
    for room in rooms {
        let ok = room == "all"
            || room == "alerts"
            || room
                .strip_prefix("entity:")
                .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
            || room
                .strip_prefix("system:")
                .is_some_and(|s| s.parse::<crate::domain::SystemId>().is_ok())
            || room
                .strip_prefix("project:")
                .is_some_and(|p| !p.is_empty() && p.len() <= 200);
        if !ok {
            return Err(format!(
                "`{room}` is not a room: use all, alerts, entity:<uuid>, project:<team key or owner/repo> or system:<system>"
            ));
        }
    }
    Ok(())
}

/// The protocol's JSON for one outgoing message.
pub fn frame(msg: &Outgoing) -> String {
    match msg {
        Outgoing::Subscribed { rooms, seq } => {
            json!({"type": "subscribed", "rooms": rooms, "seq": seq}).to_string()
        }
        Outgoing::Event(event) => event.ws_frame().to_owned(),
        Outgoing::Error { code, message } => {
            json!({"type": "error", "code": code, "message": message}).to_string()
        }
        Outgoing::Shutdown => json!({"type": "error", "code": "SHUTTING_DOWN",
            "message": "server shutting down; resume from the last seq received"})
        .to_string(),
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.authenticated() {
            self.register(ctx);
        } else {
            let ms = self.state.settings.ws.auth_timeout_ms;
            ctx.run_later(Duration::from_millis(ms), move |act, ctx| {
                if !act.authenticated() {
                    act.refuse_unauthenticated(
                        ctx,
                        &format!("no auth message within {ms} ms (ws.auth_timeout_ms)"),
                        "authentication timeout",
                    );
                }
            });
        }
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| {
            if act.last_heard.elapsed() > CLIENT_TIMEOUT {
                act.drop_client(
                    ctx,
                    "timeout",
                    ws::CloseCode::Away,
                    "no message or pong for 30 s",
                );
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let Some(id) = self.id.take() {
            self.manager.do_send(Disconnect { id });
        }
        Running::Stop
    }
}

/// What the manager sends this subscriber.
impl StreamHandler<Outgoing> for Session {
    fn handle(&mut self, msg: Outgoing, ctx: &mut Self::Context) {
        if let Outgoing::Shutdown = msg {
            self.id = None;
            return self.drop_client(
                ctx,
                "shutdown",
                ws::CloseCode::Away,
                "server shutting down; resume from the last seq received",
            );
        }
        ctx.text(frame(&msg));
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The manager only ends a live subscriber's stream when it fell behind.
        if !self.closing {
            self.id = None;
            self.close(
                ctx,
                ws::CloseCode::Policy,
                "too slow to keep up; resume from the last seq received",
            );
        }
    }
}

/// What the client sends.
impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let frame = match msg {
            Ok(ws::Message::Close(reason)) => {
                self.closing = true;
                ctx.close(reason);
                return ctx.stop();
            }
            // Answers to our pings, and nothing at all: not the client speaking.
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => return,
            Ok(frame) => frame,
            Err(e) => {
                // Oversized frames land here (frame_size): say why, then close.
                return self.close(ctx, ws::CloseCode::Size, &format!("protocol error: {e}"));
            }
        };
        if !self.admit(ctx) {
            return;
        }
        match frame {
            ws::Message::Text(text) => self.on_text(&text, ctx),
            ws::Message::Ping(p) => ctx.pong(&p),
            ws::Message::Binary(_) => {
                let why = "binary frames are not part of the protocol; send JSON text";
                Self::error(ctx, "INVALID_MESSAGE", why);
                self.drop_client(ctx, "unsupported_data", ws::CloseCode::Unsupported, why);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_of_the_design_are_accepted_and_others_named() {
        let ok =
            |r: &[&str]| check_rooms(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>(), 100);
        assert!(ok(&[
            "all",
            "alerts",
            "system:github",
            "project:ENG",
            "project:o/r"
        ])
        .is_ok());
        assert!(ok(&["entity:6f1c2a52-8d0e-4d7e-9b9a-0d3f2b7a1c11"]).is_ok());
        let err = ok(&["entity:nope"]).unwrap_err();
        assert!(err.contains("entity:nope"), "{err}");
        assert!(ok(&["system:nosuch"]).is_err());
        assert!(ok(&["random"]).is_err());
        assert!(ok(&[]).is_err());
    }

    #[test]
    fn client_messages_parse_by_type() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","rooms":["all"],"resumeFrom":4}"#).unwrap();
        assert!(matches!(
            m,
            ClientMessage::Subscribe {
                resume_from: Some(4),
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"ping"}"#).is_ok());
    }
}
