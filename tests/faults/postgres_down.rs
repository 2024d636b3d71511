//! PostgreSQL stopped for 10 s under a stream of webhook deliveries: meanwhile every
//! delivery is answered 503 with Retry-After (none 2xx, so none acknowledged and lost),
//! and when the database is back on its port the service recovers by itself: every
//! acknowledged delivery is processed exactly once.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use statsync::store::embedded::EmbeddedPostgres;

use super::support::*;
use super::{assert_applied_exactly_once, signed_report};

const SENDERS: usize = 6;
const DOWN_FOR: Duration = Duration::from_secs(10);

/// One answer (or transport failure) to one attempt at one delivery.
struct Attempt {
    sent: Instant,
    answered: Instant,
    status: Option<u16>,
    retry_after: bool,
}

#[derive(Default)]
struct Log {
    attempts: Vec<Attempt>,
    acked: Vec<usize>,
    /// Set by the test: finish the delivery in hand, then start no new one.
    stop: bool,
}

/// Sends deliveries `first, first + SENDERS, …` one at a time, each retried until 2xx
/// (as GitHub and Linear do), until told to stop.
async fn sender(base: String, first: usize, log: Rc<RefCell<Log>>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let t0 = Utc::now() - TimeDelta::hours(1);
    let mut n = first;
    while !log.borrow().stop {
        let at = t0 + TimeDelta::milliseconds(n as i64);
        let (headers, body) = signed_report(n, &format!("task-{}", n % 20), "working", at);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sent = Instant::now();
            let mut req = http
                .post(format!("{base}/webhooks/agentapi"))
                .body(body.clone());
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let r = req.send().await;
            let attempt = Attempt {
                sent,
                answered: Instant::now(),
                status: r.as_ref().ok().map(|r| r.status().as_u16()),
                retry_after: r
                    .as_ref()
                    .is_ok_and(|r| r.headers().contains_key("retry-after")),
            };
            let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
            log.borrow_mut().attempts.push(attempt);
            if ok {
                log.borrow_mut().acked.push(n);
                break;
            }
            assert!(Instant::now() < deadline, "delivery {n} never acknowledged");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        n += SENDERS;
    }
}

#[actix_web::test]
async fn with_postgresql_stopped_webhooks_answer_503_and_the_service_recovers_by_itself() {
    // A cluster of its own: stopping the shared one would fail every other test.
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("pg-down-{}", std::process::id()));
    let pg = EmbeddedPostgres::start_ephemeral(&root)
        .await
        .expect("a dedicated PostgreSQL cluster");
    let app = spawn_app_on(
        &pg.url("postgres"),
        &[
            ("STATSYNC__DATABASE__ACQUIRE_TIMEOUT_MS", "500"),
            ("STATSYNC__DATABASE__CONNECT_TIMEOUT_S", "1"),
        ],
    )
    .await;
    let log = Rc::new(RefCell::new(Log::default()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| actix_web::rt::spawn(sender(app.address.clone(), i, log.clone())))
        .collect();
    eventually("deliveries flow", Duration::from_secs(20), || {
        let log = log.clone();
        async move { log.borrow().acked.len() >= 100 }
    })
    .await;

    pg.stop().await.expect("stop PostgreSQL");
    let down_from = Instant::now();
    actix_web::rt::time::sleep(DOWN_FOR / 2).await;
    assert_eq!(
        app.get("/ready").await.status,
        503,
        "not ready without its database"
    );
    actix_web::rt::time::sleep(DOWN_FOR / 2).await;
    let down_until = Instant::now();
    pg.restart().await.expect("start PostgreSQL again");
    let restarted = Instant::now();

    // Recovery: each sender gets its delivery in hand acknowledged, then stops.
    eventually(
        "a delivery acknowledged after the restart",
        Duration::from_secs(30),
        || {
            let log = log.clone();
            async move {
                log.borrow()
                    .attempts
                    .iter()
                    .any(|a| a.sent > restarted && a.status == Some(200))
            }
        },
    )
    .await;
    log.borrow_mut().stop = true;
    for s in senders {
        s.await.expect("a sender finished");
    }
    assert_eq!(app.get("/ready").await.status, 200);

    let log = log.take();
    let during: Vec<&Attempt> = log
        .attempts
        .iter()
        .filter(|a| a.sent >= down_from && a.answered <= down_until)
        .collect();
    assert!(
        during.len() >= 20,
        "deliveries kept coming while the database was down ({})",
        during.len()
    );
    let wrong: Vec<(Option<u16>, bool)> = during
        .iter()
        .filter(|a| a.status != Some(503) || !a.retry_after)
        .map(|a| (a.status, a.retry_after))
        .collect();
    assert!(
        wrong.is_empty(),
        "while the database was down every delivery is 503 with Retry-After: {wrong:?}"
    );

    let db = app.db().await;
    wait_drained(&db, Duration::from_secs(30)).await;
    assert_eq!(
        app.count("SELECT count(*) FROM inbound_events").await as usize,
        log.acked.len(),
        "every acknowledged delivery is stored, and nothing else"
    );
    let acked: Vec<String> = log.acked.iter().map(|n| format!("delivery-{n}")).collect();
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM inbound_events WHERE delivery_id = ANY($1) AND state = 'processed'",
            &[&acked],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored as usize,
        acked.len(),
        "every acknowledged delivery processed"
    );
    assert_applied_exactly_once(&db).await;
    app.stop().await;
    pg.stop().await.expect("stop the dedicated cluster");
}
