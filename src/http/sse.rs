//! `GET /api/v1/events/stream`: the event log as Server-Sent Events (`id:` = seq), for
//! clients that cannot hold a WebSocket. `Last-Event-ID` (or `?after=`) resumes; a
//! comment every 15 s keeps proxies from closing an idle stream.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::auth::Authenticated;
use super::errors::ApiError;
use super::query::Query;
use super::AppState;
use crate::actors::websocket_manager::{Connect, Outgoing, Subscribe};

const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/events/stream", web::get().to(stream));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated rooms (default all).
    rooms: Option<String>,
    /// Events after this seq (or the `Last-Event-ID` header).
    after: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, description = "`id:` seq, `event:` type, `data:` the event, \
        until the client goes", content_type = "text/event-stream", body = String)))]
pub async fn stream(
    _: Authenticated,
    req: HttpRequest,
    state: web::Data<AppState>,
    q: Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let rooms: Vec<String> = q
        .rooms
        .as_deref()
        .unwrap_or("all")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let ws = &state.settings.ws;
    super::ws::check_rooms(&rooms, ws.max_rooms_per_connection)
        .map_err(|why| ApiError::Malformed(format!("`rooms`: {why}")))?;
    let resume_from = match req.headers().get("last-event-id") {
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::Malformed("`Last-Event-ID` must be an event seq (an integer)".into())
                })?,
        ),
        None => q.after,
    };
    // Held by the body: given back when the stream ends or the client goes.
    let slot = state
        .ws_connections
        .acquire(ws.max_connections)
        .ok_or_else(|| super::ws::full(ws.max_connections))?;
    let (sink, rx) = mpsc::channel(ws.send_buffer);
    let id = state
        .ws
        .send(Connect { sink })
        .await
        .map_err(|e| ApiError::Unavailable {
            message: format!("the event stream is not running: {e}"),
            retry_after_s: 5,
        })?;
    state.ws.do_send(Subscribe {
        id,
        rooms,
        resume_from,
    });
    // Dropping the body (client gone) drops `rx`; the manager then forgets the sink.
    let events = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        // A stopping replica ends the stream; the client reconnects with Last-Event-ID.
        match rx.recv().await? {
            Outgoing::Shutdown => None,
            m => Some((sse_frame(&m), (rx, slot))),
        }
    });
    let mut ticks = tokio::time::interval(KEEP_ALIVE);
    ticks.reset();
    let keep_alive = futures_util::stream::unfold(ticks, |mut t| async move {
        t.tick().await;
        Some((": keep-alive\n\n".to_owned(), t))
    });
    // Ends with the event stream (a slow client is dropped and reconnects with
    // Last-Event-ID); the keep-alive alone never holds it open.
    let events = events
        .map(Some)
        .chain(futures_util::stream::once(async { None }));
    let body = futures_util::stream::select(events, keep_alive.map(Some))
        .take_while(|m| std::future::ready(m.is_some()))
        .filter_map(|m| async move { m.map(|s| Ok::<_, actix_web::Error>(web::Bytes::from(s))) });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

fn sse_frame(msg: &Outgoing) -> String {
    match msg {
        Outgoing::Event(e) => format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            e.event.seq,
            e.event.event_type,
            e.json()
        ),
        Outgoing::Subscribed { seq, .. } => format!(": subscribed at seq {seq}\n\n"),
        other => format!("event: error\ndata: {}\n\n", super::ws::frame(other)),
    }
}
