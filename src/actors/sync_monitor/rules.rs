//! The alerts as plain functions: figures and thresholds in, readings out; readings and
//! what is active in, what fires and what resolves out. No SQL, no clock, no actor.

use chrono::{DateTime, Utc};

use crate::config::AlertSettings;
use crate::store::alerts::{ActiveAlert, Figures};

pub const SYNC_FAILURE_RATE: &str = "sync_failure_rate_high";
pub const SYNC_TIME: &str = "sync_time_high";
pub const OUTBOX_DEPTH: &str = "outbox_depth_high";
pub const OLDEST_PENDING: &str = "outbox_oldest_pending_high";
pub const CONFLICT_RATE: &str = "conflict_rate_high";
pub const DEAD_LETTERS: &str = "dead_letters";
pub const DELIVERIES_FAILED: &str = "deliveries_failed";

/// One alert's value against its threshold; `value` is `None` when it cannot be judged
/// (too few samples, nothing pending), which counts as not firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub name: &'static str,
    pub severity: &'static str,
    pub value: Option<f64>,
    pub threshold: f64,
    pub message: String,
}

impl Reading {
    /// A threshold of 0 turns the alert off.
    pub fn fires(&self) -> bool {
        self.threshold > 0.0 && self.value.is_some_and(|v| v >= self.threshold)
    }
}

fn ratio(part: i64, whole: i64, min_samples: u64) -> Option<f64> {
    (whole > 0 && whole as u64 >= min_samples.max(1)).then(|| part as f64 / whole as f64)
}

/// Every alert of `[alerts]`, read from `f`.
pub fn readings(f: &Figures, s: &AlertSettings) -> Vec<Reading> {
    let mut all = writes(f, s);
    all.extend(waiting_for_people(f, s));
    all
}

fn pct(v: Option<f64>) -> f64 {
    v.unwrap_or(0.0) * 100.0
}

/// How the outbound writes fare: failures, time to success, queue depth and age.
fn writes(f: &Figures, s: &AlertSettings) -> Vec<Reading> {
    let window = s.window_s;
    let failure = ratio(f.failed, f.attempted, s.min_samples);
    let depth = f.count(&["pending", "in_flight"]);
    vec![
        Reading {
            name: SYNC_FAILURE_RATE,
            severity: "critical",
            value: failure,
            threshold: s.sync_failure_rate,
            message: format!(
                "{:.0}% of outbound writes failed in the last {window} s ({} of {}); \
                 see GET /api/v1/sync/outbox",
                pct(failure),
                f.failed,
                f.attempted
            ),
        },
        Reading {
            name: SYNC_TIME,
            severity: "warning",
            value: f.average_sync_time_s,
            threshold: s.average_sync_time_s,
            message: format!(
                "outbound writes took {:.1} s on average from commit to success in the last \
                 {window} s",
                f.average_sync_time_s.unwrap_or(0.0)
            ),
        },
        Reading {
            name: OUTBOX_DEPTH,
            severity: "warning",
            value: Some(depth as f64),
            threshold: s.outbox_depth as f64,
            message: format!("{depth} outbound writes are pending or in flight"),
        },
        Reading {
            name: OLDEST_PENDING,
            severity: "critical",
            value: f.oldest_pending_age_s,
            threshold: s.oldest_pending_age_s,
            message: format!(
                "the oldest pending outbound write was committed {:.0} s ago",
                f.oldest_pending_age_s.unwrap_or(0.0)
            ),
        },
    ]
}

/// What waits for a person: conflicts, dead letters, deliveries that failed for good.
fn waiting_for_people(f: &Figures, s: &AlertSettings) -> Vec<Reading> {
    let window = s.window_s;
    let conflict = ratio(f.conflicts, f.decisions, s.min_samples);
    let dead = f.count(&["dead"]);
    vec![
        Reading {
            name: CONFLICT_RATE,
            severity: "warning",
            value: conflict,
            threshold: s.conflict_rate,
            message: format!(
                "{:.0}% of decisions in the last {window} s were conflicts ({} of {}); \
                 see GET /api/v1/conflicts?state=open",
                pct(conflict),
                f.conflicts,
                f.decisions
            ),
        },
        Reading {
            name: DEAD_LETTERS,
            severity: "warning",
            value: Some(dead as f64),
            threshold: s.dead_letters as f64,
            message: format!(
                "{dead} outbound writes are dead letters; fix the cause, then requeue them \
                 with POST /api/v1/sync/outbox/{{id}}/retry"
            ),
        },
        Reading {
            name: DELIVERIES_FAILED,
            severity: "warning",
            value: Some(f.failed_deliveries as f64),
            threshold: s.deliveries_failed as f64,
            message: format!(
                "{} accepted deliveries could not be applied; see GET \
                 /api/v1/deliveries?state=failed, fix the cause, then requeue them with \
                 POST /api/v1/deliveries/{{id}}/retry",
                f.failed_deliveries
            ),
        },
    ]
}

/// What one evaluation changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Fired(ActiveAlert),
    /// Still firing: value and message refreshed, `since` kept.
    Updated(ActiveAlert),
    /// `value` is the reading that ended it (`None`: no longer judged or configured).
    Resolved {
        alert: ActiveAlert,
        value: Option<f64>,
    },
}

/// Compares the readings with the active alerts.
pub fn evaluate(readings: &[Reading], active: &[ActiveAlert], now: DateTime<Utc>) -> Vec<Change> {
    let mut changes = Vec::new();
    for r in readings {
        let was = active.iter().find(|a| a.name == r.name);
        match (r.fires(), was) {
            (true, prior) => {
                let alert = ActiveAlert {
                    name: r.name.to_owned(),
                    severity: r.severity.to_owned(),
                    value: r.value.unwrap_or(0.0),
                    threshold: r.threshold,
                    since: prior.map_or(now, |p| p.since),
                    message: r.message.clone(),
                };
                changes.push(match prior {
                    None => Change::Fired(alert),
                    Some(_) => Change::Updated(alert),
                });
            }
            (false, Some(prior)) => changes.push(Change::Resolved {
                alert: prior.clone(),
                value: r.value,
            }),
            (false, None) => {}
        }
    }
    // An alert this version no longer knows resolves too.
    for a in active {
        if !readings.iter().any(|r| r.name == a.name) {
            changes.push(Change::Resolved {
                alert: a.clone(),
                value: None,
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AlertSettings {
        AlertSettings {
            evaluation_interval_ms: 1000,
            window_s: 600,
            min_samples: 10,
            sync_failure_rate: 0.2,
            average_sync_time_s: 60.0,
            outbox_depth: 100,
            oldest_pending_age_s: 900.0,
            conflict_rate: 0.1,
            dead_letters: 1,
            deliveries_failed: 1,
        }
    }

    fn reading<'a>(rs: &'a [Reading], name: &str) -> &'a Reading {
        rs.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn rates_are_judged_only_over_enough_samples() {
        let few = Figures {
            attempted: 5,
            failed: 5,
            ..Default::default()
        };
        let rs = readings(&few, &settings());
        assert_eq!(reading(&rs, SYNC_FAILURE_RATE).value, None);
        assert!(!reading(&rs, SYNC_FAILURE_RATE).fires());
        let many = Figures {
            attempted: 40,
            failed: 10,
            ..Default::default()
        };
        let rs = readings(&many, &settings());
        assert_eq!(reading(&rs, SYNC_FAILURE_RATE).value, Some(0.25));
        assert!(reading(&rs, SYNC_FAILURE_RATE).fires());
    }

    #[test]
    fn a_zero_threshold_turns_an_alert_off() {
        let mut s = settings();
        s.dead_letters = 0;
        let f = Figures {
            depth: vec![crate::store::alerts::DepthCount {
                system: "github".into(),
                state: "dead".into(),
                count: 3,
            }],
            ..Default::default()
        };
        assert!(!reading(&readings(&f, &s), DEAD_LETTERS).fires());
        assert!(reading(&readings(&f, &settings()), DEAD_LETTERS).fires());
    }

    #[test]
    fn an_alert_fires_once_keeps_its_since_and_resolves() {
        let t0 = Utc::now();
        let deep = Figures {
            depth: vec![crate::store::alerts::DepthCount {
                system: "linear".into(),
                state: "pending".into(),
                count: 150,
            }],
            ..Default::default()
        };
        let rs = readings(&deep, &settings());
        let first = evaluate(&rs, &[], t0);
        let [Change::Fired(fired)] = first.as_slice() else {
            panic!("{first:?}")
        };
        assert_eq!(fired.name, OUTBOX_DEPTH);
        assert_eq!(fired.value, 150.0);
        let later = t0 + chrono::TimeDelta::seconds(30);
        let again = evaluate(&rs, std::slice::from_ref(fired), later);
        assert!(matches!(again.as_slice(), [Change::Updated(a)] if a.since == t0));
        let drained = readings(&Figures::default(), &settings());
        let end = evaluate(&drained, std::slice::from_ref(fired), later);
        assert!(
            matches!(end.as_slice(), [Change::Resolved { alert, value: Some(v) }] if alert.name == OUTBOX_DEPTH && *v == 0.0)
        );
    }

    #[test]
    fn an_unknown_active_alert_resolves() {
        let stale = ActiveAlert {
            name: "retired_alert".into(),
            severity: "warning".into(),
            value: 1.0,
            threshold: 1.0,
            since: Utc::now(),
            message: "old".into(),
        };
        let changes = evaluate(
            &readings(&Figures::default(), &settings()),
            &[stale],
            Utc::now(),
        );
        assert!(matches!(
            changes.as_slice(),
            [Change::Resolved { value: None, .. }]
        ));
    }
}
