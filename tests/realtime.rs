//! Real-time delivery: real WebSocket and SSE clients against the real application on
//! real PostgreSQL, two instances sharing one database.

#[path = "realtime/browser.rs"]
mod browser;
#[path = "realtime/demo.rs"]
mod demo;
mod support;

use std::time::Duration;

use actix_web::web::Bytes;
use awc::ws;
use futures_util::SinkExt;
use serde_json::{json, Value};
use support::ws::{next, Conn};
use support::{eventually, spawn_app_on, spawn_app_with, TestApp, API_TOKEN};

const WAIT: Duration = Duration::from_secs(15);

/// A WebSocket to `app`, authenticated by header when `token` is given.
async fn open(app: &TestApp, token: Option<&str>) -> Result<Conn, awc::error::WsClientError> {
    open_from(app, token, None).await
}

/// The same, sent from a page at `origin`.
async fn open_from(
    app: &TestApp,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Conn, awc::error::WsClientError> {
    let url = format!("{}/ws", app.address.replace("http://", "ws://"));
    let mut req = awc::Client::new().ws(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(o) = origin {
        req = req.origin(o);
    }
    req.connect().await.map(|(_, conn)| conn)
}

/// The upgrade was refused with `status`.
fn assert_refused(result: Result<Conn, awc::error::WsClientError>, status: u16) {
    match result {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), status),
        other => panic!("expected {status}, got {:?}", other.map(|_| ())),
    }
}

async fn send(conn: &mut Conn, msg: Value) {
    conn.send(ws::Message::Text(msg.to_string().into()))
        .await
        .expect("send");
}

async fn subscribe(conn: &mut Conn, rooms: &[&str], resume_from: Option<i64>) -> Value {
    let mut msg = json!({"type": "subscribe", "rooms": rooms});
    if let Some(s) = resume_from {
        msg["resumeFrom"] = json!(s);
    }
    send(conn, msg).await;
    let ack = next(conn).await;
    assert_eq!(ack["type"], "subscribed", "{ack}");
    ack
}

/// Events until one with `seq >= upto`, in arrival order.
async fn events_until(conn: &mut Conn, upto: i64) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let m = next(conn).await;
        assert_eq!(m["type"], "event", "{m}");
        let seq = m["event"]["seq"].as_i64().expect("seq");
        got.push(m["event"].clone());
        if seq >= upto {
            return got;
        }
    }
}

async fn new_task(app: &TestApp, task: &str) -> String {
    let r = app
        .api(
            "POST",
            "/api/v1/links",
            Some(json!({"kind": "task", "refs": [{"system": "agentapi", "externalId": task}]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

async fn last_seq(app: &TestApp) -> i64 {
    app.count("SELECT last_seq FROM event_seq").await
}

#[actix_web::test]
async fn an_update_through_one_instance_reaches_a_subscriber_on_another() {
    // The agent API takes its time, so A logs the write's end well after B has read the
    // change: only a hint can tell B of it.
    let agent = slow_agent_api(Duration::from_millis(1500)).await;
    let a = spawn_app_with(&[("STATSYNC__AGENTAPI__URL", &agent)]).await;
    // B never polls within the test: A's NOTIFY hints (or, if B began listening after A
    // sent one, B's one read when LISTEN took effect) are what must wake it.
    let b = spawn_app_on(
        &a.database_url,
        &[("STATSYNC__WS__POLL_INTERVAL_MS", "600000")],
    )
    .await;
    let id = new_task(&a, "t-1").await;
    let mut conn = open(&b, Some(API_TOKEN)).await.expect("upgrade");
    let room = format!("entity:{id}");
    subscribe(&mut conn, &[&room], None).await;

    let body = a
        .set_status(json!({"entityId": id, "status": "in_progress"}))
        .await;
    assert_eq!(body["decision"], "applied", "{body}");
    // A's dispatcher writes the change to the agent API and logs the write's events
    // after the change's own: they reach B the same way. (Reading the log's end before
    // they were logged, and B never hearing of them, was this test's flake.)
    eventually("A logs the agent API write's end", WAIT, || async {
        a.count("SELECT count(*) FROM events WHERE type = 'agentapi_sync_completed'")
            .await
            == 1
    })
    .await;
    let upto = last_seq(&a).await;
    // Heartbeats keep the socket busy, so the deadline is on the whole wait.
    let Ok(got) = tokio::time::timeout(WAIT, events_until(&mut conn, upto)).await else {
        panic!(
            "B did not deliver seq {upto} before the deadline.\nA: {}\nB: {}\nlog: {:?}",
            hint_counts(&a).await,
            hint_counts(&b).await,
            logged(&a).await
        );
    };
    let change = got
        .iter()
        .find(|e| e["type"] == "status_changed")
        .expect("a status_changed event");
    assert_eq!(change["entityId"], json!(id));
    assert!(change["rooms"].as_array().unwrap().contains(&json!(room)));
    let types: Vec<&str> = got.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"agentapi_sync_completed"), "{types:?}");
}

/// A stand-in for the agent API that accepts every status write after `delay`; answers
/// its URL.
async fn slow_agent_api(delay: Duration) -> String {
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().route(
            "/agent",
            actix_web::web::post().to(move || async move {
                tokio::time::sleep(delay).await;
                actix_web::HttpResponse::Accepted().json(json!({"status": "received"}))
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind the agent API stand-in");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}/agent")
}

/// The replica's hint counters, to tell a hint not sent from one not heard.
async fn hint_counts(app: &TestApp) -> String {
    let text = app.get("/metrics").await.body;
    let text = text.as_str().unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("statsync_hints_total"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The event log as (seq, type, rooms).
async fn logged(app: &TestApp) -> Vec<(i64, String, Vec<String>)> {
    app.db()
        .await
        .query("SELECT seq, type, rooms FROM events ORDER BY seq", &[])
        .await
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[actix_web::test]
async fn a_delivery_stored_by_an_api_only_replica_is_applied_at_once_by_a_worker() {
    let worker = spawn_app_with(&[("STATSYNC__ENGINE__POLL_INTERVAL_MS", "600000")]).await;
    let front = spawn_app_on(
        &worker.database_url,
        &[("STATSYNC__SERVER__WORKER_ENABLED", "false")],
    )
    .await;
    let body = serde_json::to_vec(&json!({
        "taskId": "hinted",
        "state": "working",
        "timestamp": chrono::Utc::now().to_rfc3339(),
    }))
    .unwrap();
    assert_eq!(front.agent(Some("hint-1"), &body).await.status, 200);
    // The worker polls only after the deadline: the front's hint must wake it.
    eventually("the worker applies the delivery", WAIT, || async {
        worker
            .count("SELECT count(*) FROM inbound_events WHERE state = 'processed'")
            .await
            == 1
    })
    .await;
}

#[actix_web::test]
async fn a_client_that_resumes_sees_every_event_exactly_once() {
    let app = spawn_app_with(&[]).await;
    let id = new_task(&app, "t-2").await;
    let mut conn = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    let start = subscribe(&mut conn, &["all"], Some(0)).await["seq"]
        .as_i64()
        .unwrap();
    let statuses = ["in_progress", "in_review", "blocked", "in_progress", "done"];
    for s in &statuses[..2] {
        app.set_status(json!({"entityId": id, "status": s})).await;
    }
    let mut seen = events_until(&mut conn, last_seq(&app).await).await;
    let resume = seen.last().unwrap()["seq"].as_i64().unwrap();
    drop(conn);

    // Changes while the client is away, then a resume from the last seq it saw.
    for s in &statuses[2..] {
        app.set_status(json!({"entityId": id, "status": s})).await;
    }
    let mut conn = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    subscribe(&mut conn, &["all"], Some(resume)).await;
    app.set_status(json!({"entityId": id, "status": "todo", "metadata": {"after": "resume"}}))
        .await;
    seen.extend(events_until(&mut conn, last_seq(&app).await).await);

    let seqs: Vec<i64> = seen.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    // Outbound sync events keep being logged meanwhile; up to the last one seen, the
    // client must have had each exactly once.
    let expected: Vec<i64> = (1..=*seqs.last().unwrap()).collect();
    assert_eq!(
        seqs, expected,
        "every event once, in order (subscribed at {start})"
    );
    let changes = seen
        .iter()
        .filter(|e| e["type"] == "status_changed")
        .count();
    assert_eq!(changes, statuses.len() + 1);
}

#[actix_web::test]
async fn a_resume_older_than_retention_answers_resume_gap() {
    let app = spawn_app_with(&[]).await;
    let id = new_task(&app, "t-3").await;
    for s in ["in_progress", "in_review"] {
        app.set_status(json!({"entityId": id, "status": s})).await;
    }
    // What retention does, sooner.
    let oldest = last_seq(&app).await;
    app.db()
        .await
        .execute("DELETE FROM events WHERE seq < $1", &[&oldest])
        .await
        .unwrap();
    let mut conn = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    send(
        &mut conn,
        json!({"type": "subscribe", "rooms": ["all"], "resumeFrom": 0}),
    )
    .await;
    let m = next(&mut conn).await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["code"], "RESUME_GAP");
    assert!(
        m["message"].as_str().unwrap().contains(&oldest.to_string()),
        "{m}"
    );
    // From the oldest held seq on, the resume works.
    subscribe(&mut conn, &["all"], Some(oldest - 1)).await;
    let got = events_until(&mut conn, oldest).await;
    assert_eq!(got[0]["seq"], json!(oldest));
}

#[actix_web::test]
async fn no_token_a_bad_token_and_a_connection_over_the_limit_are_refused() {
    let app = spawn_app_with(&[("STATSYNC__WS__MAX_CONNECTIONS", "1")]).await;

    assert_refused(open(&app, Some("wrong-token")).await, 401);

    // No header: the first message must authenticate; anything else closes with 1008.
    let mut conn = open(&app, None).await.expect("upgrade without a header");
    send(&mut conn, json!({"type": "subscribe", "rooms": ["all"]})).await;
    let m = next(&mut conn).await;
    assert_eq!(m["code"], "UNAUTHORIZED", "{m}");
    assert_eq!(
        next(&mut conn).await,
        json!({"type": "close", "code": 1008})
    );
    drop(conn);

    // A browser's way: the token as the first message.
    let mut conn = support::wait_for("the slot freed", WAIT, || async {
        open(&app, None).await.ok()
    })
    .await;
    send(&mut conn, json!({"type": "auth", "token": API_TOKEN})).await;
    subscribe(&mut conn, &["all"], None).await;
    send(&mut conn, json!({"type": "ping"})).await;
    assert_eq!(next(&mut conn).await, json!({"type": "pong"}));
    send(
        &mut conn,
        json!({"type": "subscribe", "rooms": ["entity:nope"]}),
    )
    .await;
    assert_eq!(next(&mut conn).await["code"], "INVALID_ROOM");

    // Over ws.max_connections.
    assert_refused(open(&app, Some(API_TOKEN)).await, 503);
}

#[actix_web::test]
async fn an_origin_not_allowed_is_refused() {
    let app = spawn_app_with(&[("STATSYNC__WS__ALLOWED_ORIGINS", "https://ops.example")]).await;
    let evil = open_from(&app, Some(API_TOKEN), Some("https://evil.example")).await;
    assert_refused(evil, 403);
    let allowed = open_from(&app, Some(API_TOKEN), Some("https://ops.example")).await;
    assert!(allowed.is_ok());
}

#[actix_web::test]
async fn sse_streams_events_and_resumes_from_last_event_id() {
    let app = spawn_app_with(&[]).await;
    let id = new_task(&app, "t-4").await;
    app.set_status(json!({"entityId": id, "status": "in_progress"}))
        .await;
    let first = last_seq(&app).await;
    app.set_status(json!({"entityId": id, "status": "in_review"}))
        .await;
    let upto = last_seq(&app).await;

    let unauthorized = app
        .http
        .get(format!("{}/api/v1/events/stream", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let mut r = app
        .http
        .get(format!(
            "{}/api/v1/events/stream?rooms=entity:{id}",
            app.address
        ))
        .bearer_auth(API_TOKEN)
        .header("Last-Event-ID", first.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.last().copied().unwrap_or(0) < upto {
        let chunk: Bytes = tokio::time::timeout(WAIT, r.chunk())
            .await
            .expect("an event before the deadline")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        ids = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|s| s.parse::<i64>().unwrap())
            .collect();
    }
    assert!(
        ids.iter().all(|&s| s > first),
        "resumed after {first}: {ids:?}"
    );
    assert!(text.contains("event: status_changed"), "{text}");
}

#[actix_web::test]
async fn a_slow_consumer_is_closed_with_1008_and_resumes_without_loss() {
    let app = spawn_app_with(&[("STATSYNC__WS__SEND_BUFFER", "1000")]).await;
    let mut slow = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    subscribe(&mut slow, &["all"], None).await;
    let mut fast = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    subscribe(&mut fast, &["all"], None).await;

    // ~40 MB of events, far more than socket buffers and the 1,000-message send buffer.
    let n: i64 = 20_000;
    app.db()
        .await
        .batch_execute(&format!(
            "WITH s AS (UPDATE event_seq SET last_seq = last_seq + {n} RETURNING last_seq)
             INSERT INTO events (seq, id, type, rooms, data)
             SELECT s.last_seq - {n} + g, gen_random_uuid(), 'status_changed', ARRAY['all'],
                    jsonb_build_object('pad', repeat('x', 2000))
             FROM s, generate_series(1, {n}) AS g"
        ))
        .await
        .unwrap();
    let upto = last_seq(&app).await;
    // The fast reader having everything means the manager has offered everything to
    // the slow one too, whose socket it could not drain.
    let fast_got = events_until(&mut fast, upto).await;
    assert_eq!(fast_got.len() as i64, upto);

    let mut last = 0;
    let code = loop {
        let m = next(&mut slow).await;
        match m["type"].as_str() {
            Some("event") => {
                let seq = m["event"]["seq"].as_i64().unwrap();
                assert_eq!(seq, last + 1, "no gap before the close");
                last = seq;
            }
            Some("close") => break m["code"].as_u64().unwrap(),
            _ => panic!("unexpected {m}"),
        }
    };
    assert_eq!(code, 1008, "closed as too slow");
    assert!(
        last < upto,
        "the slow client was dropped before the end ({last})"
    );

    let mut again = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    subscribe(&mut again, &["all"], Some(last)).await;
    let rest = events_until(&mut again, upto).await;
    let seqs: Vec<i64> = rest.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (last + 1..=upto).collect::<Vec<_>>());
}

/// A gauge's value in this replica's /metrics.
async fn gauge(app: &TestApp, name: &str) -> i64 {
    let text = app.get("/metrics").await.body;
    let text = text.as_str().expect("the text exposition");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}")) as i64
}

#[actix_web::test]
async fn a_binary_frame_is_refused_with_1003_and_pings_count_against_the_rate() {
    let app = spawn_app_with(&[("STATSYNC__WS__MESSAGES_PER_SECOND", "2")]).await;
    let mut conn = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    conn.send(ws::Message::Binary(Bytes::from_static(b"\x00\x01")))
        .await
        .expect("send");
    let m = next(&mut conn).await;
    assert_eq!(m["code"], "INVALID_MESSAGE", "{m}");
    assert_eq!(
        next(&mut conn).await,
        json!({"type": "close", "code": 1003})
    );

    // Pings are frames the server answers: a flood of them is over the rate like any.
    let mut conn = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    for _ in 0..3 {
        conn.send(ws::Message::Ping(Bytes::new()))
            .await
            .expect("send");
    }
    let m = next(&mut conn).await;
    assert_eq!(m["code"], "RATE_LIMITED", "{m}");
}

#[actix_web::test]
async fn rooms_per_connection_are_capped_and_every_membership_goes_with_the_connection() {
    let app = spawn_app_with(&[("STATSYNC__WS__MAX_ROOMS_PER_CONNECTION", "3")]).await;
    let mut conn = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    subscribe(&mut conn, &["all", "project:A"], None).await;
    send(
        &mut conn,
        json!({"type": "subscribe", "rooms": ["project:B", "project:C"]}),
    )
    .await;
    let m = next(&mut conn).await;
    assert_eq!(m["code"], "TOO_MANY_ROOMS", "{m}");
    // Rooms already joined do not count twice; leaving one makes room.
    subscribe(&mut conn, &["all", "project:B"], None).await;
    send(&mut conn, json!({"type": "unsubscribe", "rooms": ["all"]})).await;
    subscribe(&mut conn, &["project:C"], None).await;
    eventually("three memberships", WAIT, || async {
        gauge(&app, "statsync_ws_subscriptions").await == 3
    })
    .await;

    // Many connections' memberships, released when they close.
    let mut conns = Vec::new();
    for i in 0..20 {
        let mut c = open(&app, Some(API_TOKEN)).await.expect("upgrade");
        subscribe(&mut c, &["all", &format!("project:P{i}")], None).await;
        conns.push(c);
    }
    eventually("43 memberships", WAIT, || async {
        gauge(&app, "statsync_ws_subscriptions").await == 43
    })
    .await;
    drop(conns);
    drop(conn);
    eventually("no membership left after the close", WAIT, || async {
        gauge(&app, "statsync_ws_subscriptions").await == 0
    })
    .await;
    assert_eq!(gauge(&app, "statsync_ws_connections").await, 0);
}

#[actix_web::test]
async fn sockets_that_never_authenticate_cannot_lock_out_an_authenticated_client() {
    let app = spawn_app_with(&[
        ("STATSYNC__WS__MAX_CONNECTIONS", "1"),
        ("STATSYNC__WS__MAX_UNAUTHENTICATED", "3"),
        ("STATSYNC__WS__MAX_UNAUTHENTICATED_PER_ADDRESS", "2"),
        ("STATSYNC__WS__AUTH_TIMEOUT_MS", "3000"),
    ])
    .await;
    let [b, c, d] = [2u8, 3, 4].map(|n| std::net::IpAddr::from([127, 0, 0, n]));
    let mut silent = Vec::new();
    for from in [b, b, c] {
        let (conn, status) = support::raw::silent_upgrade(&app, from).await;
        assert_eq!(status, 101);
        silent.push(conn);
    }
    // Per address, then in all.
    assert_eq!(support::raw::silent_upgrade(&app, b).await.1, 503);
    assert_eq!(support::raw::silent_upgrade(&app, d).await.1, 503);
    assert_eq!(gauge(&app, "statsync_ws_unauthenticated").await, 3);

    // The silent sockets hold none of ws.max_connections.
    let mut authed = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    subscribe(&mut authed, &["all"], None).await;
    assert_eq!(gauge(&app, "statsync_ws_connections").await, 1);

    // A browser authenticating by message needs a slot of ws.max_connections too.
    drop(silent.pop());
    let mut browser = support::wait_for("room to wait for authentication", WAIT, || async {
        open(&app, None).await.ok()
    })
    .await;
    send(&mut browser, json!({"type": "auth", "token": API_TOKEN})).await;
    let m = next(&mut browser).await;
    assert_eq!(m["code"], "SERVICE_UNAVAILABLE", "{m}");
    assert_eq!(
        next(&mut browser).await,
        json!({"type": "close", "code": 1013})
    );

    // The silent ones are closed at ws.auth_timeout_ms, and their budget is free again.
    for conn in silent {
        let (mut rd, _wr) = conn.into_split();
        let said = support::raw::read_until_closed(&mut rd, WAIT).await;
        assert!(said.contains("UNAUTHORIZED"), "{said}");
    }
    eventually("no socket waits to authenticate", WAIT, || async {
        gauge(&app, "statsync_ws_unauthenticated").await == 0
    })
    .await;
    drop(authed);
    let mut browser = support::wait_for("a slot for the browser", WAIT, || async {
        let mut conn = open(&app, None).await.ok()?;
        send(&mut conn, json!({"type": "auth", "token": API_TOKEN})).await;
        send(&mut conn, json!({"type": "ping"})).await;
        (next(&mut conn).await["type"] == "pong").then_some(conn)
    })
    .await;
    subscribe(&mut browser, &["all"], None).await;
}

#[actix_web::test]
async fn sse_streams_share_the_connection_budget() {
    let app = spawn_app_with(&[("STATSYNC__WS__MAX_CONNECTIONS", "2")]).await;
    let stream = |app: &TestApp| {
        app.http
            .get(format!("{}/api/v1/events/stream", app.address))
            .bearer_auth(API_TOKEN)
            .send()
    };
    let _ws = open(&app, Some(API_TOKEN)).await.expect("upgrade");
    let first = stream(&app).await.unwrap();
    assert_eq!(first.status(), 200);
    let refused = stream(&app).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_refused(open(&app, Some(API_TOKEN)).await, 503);
    assert_eq!(gauge(&app, "statsync_ws_connections").await, 2);
    // A client gone gives its slot back, once the server notices at its next write (an
    // event, or the keep-alive comment every 15 s).
    drop(first);
    let id = new_task(&app, "t-sse").await;
    let mut n = 0;
    support::wait_for("the stream's slot given back", WAIT, || {
        n += 1;
        let status = ["in_progress", "todo"][n % 2];
        let (app, id) = (&app, &id);
        async move {
            app.set_status(json!({"entityId": id, "status": status}))
                .await;
            let r = stream(app).await.ok()?;
            (r.status() == 200).then_some(r)
        }
    })
    .await;
}

#[actix_web::test]
async fn the_board_loads_each_entity_with_what_each_system_shows_and_the_seq_to_resume_from() {
    let app = spawn_app_with(&[]).await;
    let linked = app
        .link_new(json!({"kind": "issue", "refs": [
            {"system": "github", "externalId": "acme/app#7"},
            {"system": "agentapi", "externalId": "t-board"},
        ]}))
        .await;
    let report = json!({"taskId": "t-board", "state": "working",
                        "timestamp": chrono::Utc::now().to_rfc3339()});
    let r = app
        .agent(Some("board-1"), report.to_string().as_bytes())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.drained().await;

    let board = app.api("GET", "/api/v1/board", None).await;
    assert_eq!(board.status, 200, "{}", board.body);
    let row = &board.body["entities"][0];
    assert_eq!(row["id"], linked["id"], "{}", board.body);
    assert_eq!(row["status"], "in_progress");
    let shows = |system: &str| {
        row["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["system"] == system)
            .map(|l| l["shows"].clone())
            .unwrap_or_else(|| panic!("a {system} link in {row}"))
    };
    // The agent said it; nothing has been written to GitHub (it is unreachable here).
    assert_eq!(shows("agentapi"), json!("in_progress"));
    assert_eq!(shows("github"), Value::Null);
    // The log's end as of the rows: what came after it is what a subscriber resumes.
    let seq = board.body["seq"].as_i64().expect("seq");
    assert!(seq > 0 && seq <= last_seq(&app).await, "{seq}");
    assert_eq!(board.body["truncated"], false);

    // Exactly as many entities as the limit: none left out.
    let exact = app.api("GET", "/api/v1/board?limit=1", None).await;
    assert_eq!(exact.body["entities"].as_array().map(Vec::len), Some(1));
    assert_eq!(exact.body["truncated"], false, "{}", exact.body);

    let bad = app.api("GET", "/api/v1/board?limit=0", None).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.to_string().contains("limit"), "{}", bad.body);
    let anonymous = app.get("/api/v1/board").await;
    assert_eq!(anonymous.status, 401);
}
