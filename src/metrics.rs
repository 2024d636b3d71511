//! Every Prometheus metric statsync exports, named in one place. The registry is
//! owned here and served at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub const WEBHOOKS_RECEIVED: &str = "statsync_webhooks_received_total";
pub const SIGNATURE_FAILURES: &str = "statsync_webhook_signature_failures_total";
pub const DECISIONS: &str = "statsync_decisions_total";
pub const INBOUND_BACKLOG: &str = "statsync_inbound_backlog";
pub const WEBHOOK_TO_COMMIT: &str = "statsync_webhook_to_commit_seconds";
pub const BATCH_SIZE: &str = "statsync_apply_batch_size";
pub const BUILD_INFO: &str = "statsync_build_info";
pub const OUTBOUND_REQUESTS: &str = "statsync_outbound_requests_total";
pub const RATE_LIMIT_REMAINING: &str = "statsync_outbound_rate_limit_remaining";
pub const OUTBOX_DEAD_LETTERS: &str = "statsync_outbox_dead_letters_total";

pub struct Metrics {
    pub registry: Registry,
    pub webhooks_received: IntCounterVec,
    pub signature_failures: IntCounterVec,
    pub decisions: IntCounterVec,
    pub inbound_backlog: IntGauge,
    pub webhook_to_commit: HistogramVec,
    pub batch_size: HistogramVec,
    pub build_info: IntGaugeVec,
    pub outbound_requests: IntCounterVec,
    pub rate_limit_remaining: IntGaugeVec,
    pub dead_letters: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // unwrap: names and labels are constants checked by the test below
        let webhooks_received = IntCounterVec::new(
            Opts::new(
                WEBHOOKS_RECEIVED,
                "Webhook deliveries received, by system, event and result",
            ),
            &["system", "event", "result"],
        )
        .unwrap();
        let signature_failures = IntCounterVec::new(
            Opts::new(
                SIGNATURE_FAILURES,
                "Webhook deliveries refused for a bad or missing signature",
            ),
            &["system"],
        )
        .unwrap();
        let decisions = IntCounterVec::new(
            Opts::new(
                DECISIONS,
                "Decisions on incoming updates, by source system and kind",
            ),
            &["system", "decision"],
        )
        .unwrap();
        let inbound_backlog = IntGauge::new(
            INBOUND_BACKLOG,
            "Stored deliveries not yet processed (as last seen by this replica)",
        )
        .unwrap();
        let webhook_to_commit = HistogramVec::new(
            HistogramOpts::new(
                WEBHOOK_TO_COMMIT,
                "From a delivery's commit to its canonical commit",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["system"],
        )
        .unwrap();
        let batch_size = HistogramVec::new(
            HistogramOpts::new(BATCH_SIZE, "Updates applied per database transaction")
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0]),
            &["source"],
        )
        .unwrap();
        let build_info = IntGaugeVec::new(
            Opts::new(BUILD_INFO, "Always 1; labels name the running build"),
            &["version"],
        )
        .unwrap();
        let outbound_requests = IntCounterVec::new(
            Opts::new(
                OUTBOUND_REQUESTS,
                "Outbound calls to external systems, by system and result (ok or error code)",
            ),
            &["system", "result"],
        )
        .unwrap();
        let rate_limit_remaining = IntGaugeVec::new(
            Opts::new(
                RATE_LIMIT_REMAINING,
                "Outbound requests left in the current window, by system: the API's own \
                 count when it reports one, else statsync's limiter",
            ),
            &["system"],
        )
        .unwrap();
        let dead_letters = IntCounterVec::new(
            Opts::new(
                OUTBOX_DEAD_LETTERS,
                "Outbox rows dead-lettered, by system and error code",
            ),
            &["system", "code"],
        )
        .unwrap();
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in [
            Box::new(webhooks_received.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(signature_failures.clone()),
            Box::new(decisions.clone()),
            Box::new(inbound_backlog.clone()),
            Box::new(webhook_to_commit.clone()),
            Box::new(batch_size.clone()),
            Box::new(build_info.clone()),
            Box::new(outbound_requests.clone()),
            Box::new(rate_limit_remaining.clone()),
            Box::new(dead_letters.clone()),
        ] {
            // unwrap: each name is registered once, here
            registry.register(c).unwrap();
        }
        Metrics {
            registry,
            webhooks_received,
            signature_failures,
            decisions,
            inbound_backlog,
            webhook_to_commit,
            batch_size,
            build_info,
            outbound_requests,
            rate_limit_remaining,
            dead_letters,
        }
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
    }
}
