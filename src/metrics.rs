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

pub struct Metrics {
    pub registry: Registry,
    pub webhooks_received: IntCounterVec,
    pub signature_failures: IntCounterVec,
    pub decisions: IntCounterVec,
    pub conflicts: IntCounterVec,
    pub inbound_backlog: IntGauge,
    pub webhook_to_commit: HistogramVec,
    pub commit_to_outbound: HistogramVec,
    pub commit_to_websocket: Histogram,
    pub batch_size: HistogramVec,
    pub build_info: IntGaugeVec,
    pub outbound_requests: IntCounterVec,
    pub outbound_retries: IntCounterVec,
    pub rate_limit_remaining: IntGaugeVec,
    pub dead_letters: IntCounterVec,
    pub deliveries_failed: IntCounterVec,
    pub outbox_depth: IntGaugeVec,
    pub outbox_oldest_pending_age: prometheus::Gauge,
    pub ws_connections: IntGauge,
    pub ws_unauthenticated: IntGauge,
    pub ws_subscriptions: IntGauge,
    pub ws_dropped: IntCounterVec,
    pub db_pool_max: IntGauge,
    pub db_pool_connections: IntGauge,
    pub db_pool_idle: IntGauge,
    pub db_pool_waiters: IntGauge,
    pub alerts_firing: IntGaugeVec,
    pub identity_discovery_failures: IntCounterVec,
    pub hints: IntCounterVec,
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
        let r = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str| reg(&r, IntGauge::new(name, help));
        let latency = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                    labels,
                ),
            )
        };
        let m = Metrics {
            webhooks_received: counter(
                WEBHOOKS_RECEIVED,
                "Webhook deliveries received, by system, event and result",
                &["system", "event", "result"],
            ),
            signature_failures: counter(
                SIGNATURE_FAILURES,
                "Webhook deliveries refused for a bad or missing signature",
                &["system"],
            ),
            decisions: counter(
                DECISIONS,
                "Decisions on incoming updates, by source system and kind",
                &["system", "decision"],
            ),
            conflicts: counter(
                CONFLICTS,
                "Conflicting updates, by strategy and outcome (won, lost, manual, escalated)",
                &["strategy", "outcome"],
            ),
            inbound_backlog: gauge(
                INBOUND_BACKLOG,
                "Stored deliveries not yet processed (as last seen by this replica)",
            ),
            webhook_to_commit: latency(
                WEBHOOK_TO_COMMIT,
                "From a delivery's commit to its canonical commit",
                &["system"],
            ),
            commit_to_outbound: latency(
                COMMIT_TO_OUTBOUND,
                "From a canonical commit to the outbound write's success, by target system",
                &["system"],
            ),
            commit_to_websocket: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        COMMIT_TO_WEBSOCKET,
                        "From an event's commit to its hand-over to this replica's subscribers",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                ),
            ),
            batch_size: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(BATCH_SIZE, "Updates applied per database transaction")
                        .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0]),
                    &["source"],
                ),
            ),
            build_info: gauges(
                BUILD_INFO,
                "Always 1; labels name the running build",
                &["version", "revision", "profile"],
            ),
            outbound_requests: counter(
                OUTBOUND_REQUESTS,
                "Outbound calls to external systems, by system and result (ok or error code)",
                &["system", "result"],
            ),
            outbound_retries: counter(
                OUTBOUND_RETRIES,
                "Outbound writes scheduled for another attempt, by system and error code",
                &["system", "code"],
            ),
            rate_limit_remaining: gauges(
                RATE_LIMIT_REMAINING,
                "Outbound requests left in the current window, by system: the API's own \
                 count when it reports one, else statsync's limiter",
                &["system"],
            ),
            dead_letters: counter(
                OUTBOX_DEAD_LETTERS,
                "Outbox rows dead-lettered, by system and error code",
                &["system", "code"],
            ),
            deliveries_failed: counter(
                DELIVERIES_FAILED,
                "Accepted deliveries that could not be applied, by system and error code",
                &["system", "code"],
            ),
            outbox_depth: gauges(
                OUTBOX_DEPTH,
                "Outbox rows by system and state (pending, in_flight, dead), read from the \
                 database at each SyncMonitor interval",
                &["system", "state"],
            ),
            outbox_oldest_pending_age: reg(
                &r,
                prometheus::Gauge::new(
                    OUTBOX_OLDEST_PENDING_AGE,
                    "Seconds since the oldest pending or in-flight outbox row was committed \
                     (0 when none), read at each SyncMonitor interval",
                ),
            ),
            ws_connections: gauge(
                WS_CONNECTIONS,
                "Authenticated WebSocket connections and SSE streams open on this replica \
                 (they share ws.max_connections)",
            ),
            ws_unauthenticated: gauge(
                WS_UNAUTHENTICATED,
                "WebSocket connections on this replica that have not authenticated yet",
            ),
            ws_subscriptions: gauge(
                WS_SUBSCRIPTIONS,
                "Room memberships of this replica's subscribers (WebSocket and SSE)",
            ),
            ws_dropped: counter(
                WS_DROPPED,
                "Subscribers this replica closed, by reason (slow, rate_limited, timeout, \
                 unauthenticated, unsupported_data, shutdown)",
                &["reason"],
            ),
            db_pool_max: gauge(DB_POOL_MAX, "The connection pool's maximum size"),
            db_pool_connections: gauge(
                DB_POOL_CONNECTIONS,
                "Connections the pool holds open (idle or in use)",
            ),
            db_pool_idle: gauge(DB_POOL_IDLE, "Pooled connections not in use"),
            db_pool_waiters: gauge(DB_POOL_WAITERS, "Tasks waiting for a pooled connection"),
            alerts_firing: gauges(
                ALERTS_FIRING,
                "1 for each active statsync alert (GET /alerts), by alert and severity",
                &["alert", "severity"],
            ),
            identity_discovery_failures: counter(
                IDENTITY_DISCOVERY_FAILURES,
                "Failed attempts to learn statsync's own identity in a system (retried every \
                 minute), by system and error code",
                &["system", "code"],
            ),
            hints: counter(
                HINTS,
                "Cross-replica wake-ups (NOTIFY hints): sent, failed to send (kept and \
                 retried), and received from other replicas",
                &["outcome"],
            ),
            registry: r.clone(),
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
        m.webhooks_received
            .with_label_values(&["github", "issues", "accepted"])
            .inc();
        let text = m.render();
        assert!(text.contains("statsync_webhooks_received_total{event=\"issues\",result=\"accepted\",system=\"github\"} 1"));
        assert!(text.contains("statsync_build_info"));
        assert!(text.contains("statsync_ws_connections 0"));
    }
}
