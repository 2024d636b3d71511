//! Operating statsync: what `/metrics` exports after real traffic (parsed as the
//! exposition format, and by promtool when installed), alerts that fire and resolve and
//! reach WebSocket subscribers, and SIGTERM under webhook load.

#[path = "operations/alerts.rs"]
mod alerts;
#[path = "operations/metrics.rs"]
mod metrics;
#[path = "operations/shutdown.rs"]
mod shutdown;
mod support;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use support::ws::{next as ws_next, Conn};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// A WebSocket to `app`, authenticated, subscribed to `rooms`.
async fn subscribed(app: &TestApp, rooms: &[&str]) -> Conn {
    let url = format!("{}/ws", app.address.replace("http://", "ws://"));
    let (_, mut conn) = awc::Client::new()
        .ws(url)
        .bearer_auth(API_TOKEN)
        .connect()
        .await
        .expect("WebSocket upgrade");
    let msg = json!({"type": "subscribe", "rooms": rooms}).to_string();
    conn.send(ws::Message::Text(msg.into()))
        .await
        .expect("send subscribe");
    let ack = ws_next(&mut conn).await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    conn
}

/// The next event of type `kind`, skipping others.
async fn next_event(conn: &mut Conn, kind: &str) -> Value {
    loop {
        let m = ws_next(conn).await;
        if m["type"] == "event" && m["event"]["type"] == kind {
            return m["event"].clone();
        }
    }
}

/// An HTTP server on 127.0.0.1:0 that answers every request 200 `{}` (the agent API).
fn accepting_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async { HttpResponse::Ok().json(json!({})) }))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}
