//! Every Prometheus metric statsync exports, named in one place. The handles are shared
//! by the parts that count; the SyncMonitor owns the registry, refreshes the gauges read
//! from the database or the pool, and renders `/metrics`.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub const WEBHOOKS_RECEIVED: &str = "statsync_webhooks_received_total";
pub const SIGNATURE_FAILURES: &str = "statsync_webhook_signature_failures_total";
pub const DECISIONS: &str = "statsync_decisions_total";
pub const CONFLICTS: &str = "statsync_conflicts_total";
pub const INBOUND_BACKLOG: &str = "statsync_inbound_backlog";
pub const WEBHOOK_TO_COMMIT: &str = "statsync_webhook_to_commit_seconds";
pub const COMMIT_TO_OUTBOUND: &str = "statsync_commit_to_outbound_seconds";
pub const COMMIT_TO_WEBSOCKET: &str = "statsync_commit_to_websocket_seconds";
pub const BATCH_SIZE: &str = "statsync_apply_batch_size";
pub const BUILD_INFO: &str = "statsync_build_info";
pub const OUTBOUND_REQUESTS: &str = "statsync_outbound_requests_total";
pub const OUTBOUND_RETRIES: &str = "statsync_outbound_retries_total";
pub const RATE_LIMIT_REMAINING: &str = "statsync_outbound_rate_limit_remaining";
pub const OUTBOX_DEAD_LETTERS: &str = "statsync_outbox_dead_letters_total";
pub const DELIVERIES_FAILED: &str = "statsync_deliveries_failed_total";
pub const OUTBOX_DEPTH: &str = "statsync_outbox_depth";
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "statsync_outbox_oldest_pending_age_seconds";
pub const WS_CONNECTIONS: &str = "statsync_ws_connections";
pub const WS_UNAUTHENTICATED: &str = "statsync_ws_unauthenticated";
pub const WS_SUBSCRIPTIONS: &str = "statsync_ws_subscriptions";
pub const WS_DROPPED: &str = "statsync_ws_dropped_total";
pub const DB_POOL_MAX: &str = "statsync_db_pool_max_connections";
pub const DB_POOL_CONNECTIONS: &str = "statsync_db_pool_connections";
pub const DB_POOL_IDLE: &str = "statsync_db_pool_idle_connections";
pub const DB_POOL_WAITERS: &str = "statsync_db_pool_waiters";
pub const ALERTS_FIRING: &str = "statsync_alerts_firing";
pub const IDENTITY_DISCOVERY_FAILURES: &str = "statsync_identity_discovery_failures_total";
pub const HINTS: &str = "statsync_hints_total";

/// Seconds, from a millisecond to a minute: the latencies statsync cares about.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Every metric statsync exports on its one registry, grouped by what it measures.
pub struct Metrics {
    pub registry: Registry,
    pub inbound: Inbound,
    pub outbound: Outbound,
    pub streams: Streams,
    pub pool: Pool,
    pub build_info: IntGaugeVec,
    pub alerts_firing: IntGaugeVec,
}

/// Deliveries in and the engine's decisions.
pub struct Inbound {
    pub webhooks_received: IntCounterVec,
    pub signature_failures: IntCounterVec,
    pub decisions: IntCounterVec,
    pub conflicts: IntCounterVec,
    pub inbound_backlog: IntGauge,
    pub webhook_to_commit: HistogramVec,
    pub batch_size: HistogramVec,
    pub deliveries_failed: IntCounterVec,
}

/// Writes to the other systems and their queue.
pub struct Outbound {
    pub commit_to_outbound: HistogramVec,
    pub outbound_requests: IntCounterVec,
    pub outbound_retries: IntCounterVec,
    pub rate_limit_remaining: IntGaugeVec,
    pub dead_letters: IntCounterVec,
    pub outbox_depth: IntGaugeVec,
    pub outbox_oldest_pending_age: prometheus::Gauge,
    pub identity_discovery_failures: IntCounterVec,
}

/// WebSockets, SSE and the hints between replicas.
pub struct Streams {
    pub commit_to_websocket: Histogram,
    pub ws_connections: IntGauge,
    pub ws_unauthenticated: IntGauge,
    pub ws_subscriptions: IntGauge,
    pub ws_dropped: IntCounterVec,
    pub hints: IntCounterVec,
}

/// The database connection pool at scrape time.
pub struct Pool {
    pub db_pool_max: IntGauge,
    pub db_pool_connections: IntGauge,
    pub db_pool_idle: IntGauge,
    pub db_pool_waiters: IntGauge,
}

/// Registers `c` and hands it back.
// unwrap: names, help texts and labels are constants of this file, each registered
// once; `every_metric_registers_and_renders` runs this code.
fn reg<C: Collector + Clone + 'static>(registry: &Registry, c: prometheus::Result<C>) -> C {
    let c = c.unwrap();
    registry.register(Box::new(c.clone())).unwrap();
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registrar(Registry::new());
        let m = Metrics {
            inbound: Inbound::new(&r),
            outbound: Outbound::new(&r),
            streams: Streams::new(&r),
            pool: Pool::new(&r),
            build_info: r.gauges(
                BUILD_INFO,
                "Always 1; labels name the running build",
                &["version", "revision", "profile"],
            ),
            alerts_firing: r.gauges(
                ALERTS_FIRING,
                "1 for each active statsync alert (GET /alerts), by alert and severity",
                &["alert", "severity"],
            ),
            registry: r.0.clone(),
        };
        m.build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("STATSYNC_REVISION").unwrap_or("unknown"),
                if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            ])
            .set(1);
        m
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Registers each kind of metric on the one registry.
struct Registrar(Registry);

impl Registrar {
    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        reg(&self.0, IntCounterVec::new(Opts::new(name, help), labels))
    }
    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        reg(&self.0, IntGaugeVec::new(Opts::new(name, help), labels))
    }
    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        reg(&self.0, IntGauge::new(name, help))
    }
    fn latency(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        reg(
            &self.0,
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            ),
        )
    }
}

impl Inbound {
    fn new(r: &Registrar) -> Self {
        Inbound {
            webhooks_received: r.counter(
                WEBHOOKS_RECEIVED,
                "Webhook deliveries received, by system, event and result",
                &["system", "event", "result"],
            ),
            signature_failures: r.counter(
                SIGNATURE_FAILURES,
                "Webhook deliveries refused for a bad or missing signature",
                &["system"],
            ),
            decisions: r.counter(
                DECISIONS,
                "Decisions on incoming updates, by source system and kind",
                &["system", "decision"],
            ),
            conflicts: r.counter(
                CONFLICTS,
                "Conflicting updates, by strategy and outcome (won, lost, manual, escalated)",
                &["strategy", "outcome"],
            ),
            inbound_backlog: r.gauge(
                INBOUND_BACKLOG,
                "Stored deliveries not yet processed (as last seen by this replica)",
            ),
            webhook_to_commit: r.latency(
                WEBHOOK_TO_COMMIT,
                "From a delivery's commit to its canonical commit",
                &["system"],
            ),
            batch_size: reg(
                &r.0,
                HistogramVec::new(
                    HistogramOpts::new(BATCH_SIZE, "Updates applied per database transaction")
                        .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0]),
                    &["source"],
                ),
            ),
            deliveries_failed: r.counter(
                DELIVERIES_FAILED,
                "Accepted deliveries that could not be applied, by system and error code",
                &["system", "code"],
            ),
        }
    }
}

impl Outbound {
    fn new(r: &Registrar) -> Self {
        Outbound {
            commit_to_outbound: r.latency(
                COMMIT_TO_OUTBOUND,
                "From a canonical commit to the outbound write's success, by target system",
                &["system"],
            ),
            outbound_requests: r.counter(
                OUTBOUND_REQUESTS,
                "Outbound calls to external systems, by system and result (ok or error code)",
                &["system", "result"],
            ),
            outbound_retries: r.counter(
                OUTBOUND_RETRIES,
                "Outbound writes scheduled for another attempt, by system and error code",
                &["system", "code"],
            ),
            rate_limit_remaining: r.gauges(
                RATE_LIMIT_REMAINING,
                "Outbound requests left in the current window, by system: the API's own \
                 count when it reports one, else statsync's limiter",
                &["system"],
            ),
            dead_letters: r.counter(
                OUTBOX_DEAD_LETTERS,
                "Outbox rows dead-lettered, by system and error code",
                &["system", "code"],
            ),
            outbox_depth: r.gauges(
                OUTBOX_DEPTH,
                "Outbox rows by system and state (pending, in_flight, dead), read from the \
                 database at each SyncMonitor interval",
                &["system", "state"],
            ),
            outbox_oldest_pending_age: reg(
                &r.0,
                prometheus::Gauge::new(
                    OUTBOX_OLDEST_PENDING_AGE,
                    "Seconds since the oldest pending or in-flight outbox row was committed \
                     (0 when none), read at each SyncMonitor interval",
                ),
            ),
            identity_discovery_failures: r.counter(
                IDENTITY_DISCOVERY_FAILURES,
                "Failed attempts to learn statsync's own identity in a system (retried every \
                 minute), by system and error code",
                &["system", "code"],
            ),
        }
    }
}

impl Streams {
    fn new(r: &Registrar) -> Self {
        Streams {
            commit_to_websocket: reg(
                &r.0,
                Histogram::with_opts(
                    HistogramOpts::new(
                        COMMIT_TO_WEBSOCKET,
                        "From an event's commit to its hand-over to this replica's subscribers",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                ),
            ),
            ws_connections: r.gauge(
                WS_CONNECTIONS,
                "Authenticated WebSocket connections and SSE streams open on this replica \
                 (they share ws.max_connections)",
            ),
            ws_unauthenticated: r.gauge(
                WS_UNAUTHENTICATED,
                "WebSocket connections on this replica that have not authenticated yet",
            ),
            ws_subscriptions: r.gauge(
                WS_SUBSCRIPTIONS,
                "Room memberships of this replica's subscribers (WebSocket and SSE)",
            ),
            ws_dropped: r.counter(
                WS_DROPPED,
                "Subscribers this replica closed, by reason (slow, rate_limited, timeout, \
                 unauthenticated, unsupported_data, shutdown)",
                &["reason"],
            ),
            hints: r.counter(
                HINTS,
                "Cross-replica wake-ups (NOTIFY hints): sent, failed to send (kept and \
                 retried), and received from other replicas",
                &["outcome"],
            ),
        }
    }
}

impl Pool {
    fn new(r: &Registrar) -> Self {
        Pool {
            db_pool_max: r.gauge(DB_POOL_MAX, "The connection pool's maximum size"),
            db_pool_connections: r.gauge(
                DB_POOL_CONNECTIONS,
                "Connections the pool holds open (idle or in use)",
            ),
            db_pool_idle: r.gauge(DB_POOL_IDLE, "Pooled connections not in use"),
            db_pool_waiters: r.gauge(DB_POOL_WAITERS, "Tasks waiting for a pooled connection"),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_metric_registers_and_renders() {
        let m = super::Metrics::new();
        m.inbound
            .webhooks_received
            .with_label_values(&["github", "issues", "accepted"])
            .inc();
        let text = m.render();
        assert!(text.contains("statsync_webhooks_received_total{event=\"issues\",result=\"accepted\",system=\"github\"} 1"));
        assert!(text.contains("statsync_build_info"));
        assert!(text.contains("statsync_ws_connections 0"));
    }
}
