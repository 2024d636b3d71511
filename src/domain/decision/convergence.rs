//! Property: the same updates delivered in any order leave the entity in the same status
//! (the one of the greatest update in the strategy's order, see the module doc of
//! `decision`), and `version` counts exactly the changes applied on the way.
//!
//! Updates are explicit canonical writes (API and PostgreSQL writes are explicit
//! reopens), the transition table is open and escalation is off: those are the rules
//! that depend on arrival order by design.

use std::cmp::Reverse;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::{decide, EntitySnapshot, Incoming};
use crate::domain::policy::Strategy as Resolution;
use crate::domain::{CanonicalStatus, EntityKind, MappingTable, NativeStatus, Policy, SystemId};

#[derive(Debug, Clone)]
struct Update {
    source: SystemId,
    status: CanonicalStatus,
    ts_ms: i64,
}

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).unwrap() + TimeDelta::milliseconds(ms)
}

/// 1..12 updates, source timestamps distinct per system; a narrow range of whole
/// seconds so that different systems often share one.
fn updates() -> impl Strategy<Value = Vec<Update>> {
    prop::collection::btree_map(
        (0..SystemId::ALL.len(), 0..10i64),
        0..CanonicalStatus::ALL.len(),
        1..12,
    )
    .prop_map(|updates| {
        updates
            .into_iter()
            .map(|((system, second), status)| Update {
                source: SystemId::ALL[system],
                status: CanonicalStatus::ALL[status],
                ts_ms: second * 1000,
            })
            .collect()
    })
}

/// Two delivery orders of one set of updates, and a priority assignment.
fn scenario() -> impl Strategy<Value = (Vec<Update>, Vec<Update>, Vec<u8>)> {
    (updates(), Just(vec![0u8, 1, 2, 3]).prop_shuffle()).prop_flat_map(|(updates, priorities)| {
        (
            Just(updates.clone()).prop_shuffle(),
            Just(updates).prop_shuffle(),
            Just(priorities),
        )
    })
}

fn policy(strategy: Resolution, priorities: &[u8]) -> Policy {
    let mut policy = Policy {
        strategy,
        escalation_threshold: 0,
        ..Policy::default()
    };
    for (system, priority) in SystemId::ALL.iter().zip(priorities) {
        policy.priorities.insert(*system, *priority);
    }
    policy
}

/// Delivers `order`. Windows are in source time: inside, the window spans every
/// update; outside, the updates' seconds are stretched to hours, so only updates of
/// one second (from different systems) are within a window of each other. Returns the
/// entity and the changes applied.
fn deliver(
    order: &[Update],
    policy: &Policy,
    inside_window: bool,
) -> Result<(EntitySnapshot, i64), TestCaseError> {
    let table = MappingTable::default();
    let mut policy = policy.clone();
    let stretch = match inside_window {
        true => {
            policy.conflict_window = TimeDelta::days(1);
            1
        }
        false => 3600,
    };
    let mut current: Option<EntitySnapshot> = None;
    let mut applied = 0;
    for (i, update) in order.iter().enumerate() {
        let now = t(1_000_000 + i as i64);
        let native = NativeStatus::Canonical {
            status: update.status,
        };
        let incoming = Incoming {
            source: update.source,
            mapping: table.inbound(&native, None).unwrap(),
            source_ts: t(update.ts_ms * stretch),
            explicit: true,
            forced: false,
            catch_up: false,
            correctable: true,
            reach: Default::default(),
        };
        let decision = decide(current.as_ref(), &incoming, &policy);
        if let Some(to) = decision.applied_status() {
            prop_assert_ne!(
                Some(to),
                current.as_ref().map(|c| c.status),
                "{:?}",
                decision
            );
            applied += 1;
        }
        current = EntitySnapshot::after(
            current.as_ref(),
            EntityKind::Issue,
            &incoming,
            &decision,
            now,
        );
    }
    match current {
        Some(entity) => Ok((entity, applied)),
        None => Err(TestCaseError::fail("no entity was created")),
    }
}

/// The status the greatest update in the strategy's order carries.
fn winner(updates: &[Update], policy: &Policy, by_priority: bool) -> Option<CanonicalStatus> {
    let priority = |u: &Update| policy.priority(u.source);
    let best = if by_priority {
        updates
            .iter()
            .max_by_key(|u| (Reverse(priority(u)), u.ts_ms, Reverse(u.source)))
    } else {
        updates
            .iter()
            .max_by_key(|u| (u.ts_ms, Reverse(priority(u)), Reverse(u.source)))
    };
    best.map(|u| u.status)
}

fn converges(
    a: &[Update],
    b: &[Update],
    priorities: &[u8],
    inside_window: bool,
) -> Result<(), TestCaseError> {
    for strategy in [Resolution::TimestampBased, Resolution::PriorityBased] {
        let policy = policy(strategy, priorities);
        let (entity_a, applied_a) = deliver(a, &policy, inside_window)?;
        let (entity_b, applied_b) = deliver(b, &policy, inside_window)?;
        prop_assert_eq!(entity_a.status, entity_b.status, "{} diverged", strategy);
        let by_priority = inside_window && strategy == Resolution::PriorityBased;
        prop_assert_eq!(
            Some(entity_a.status),
            winner(a, &policy, by_priority),
            "{}",
            strategy
        );
        prop_assert_eq!(entity_a.version, applied_a);
        prop_assert_eq!(entity_b.version, applied_b);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_delivery_order_converges_outside_the_window((a, b, priorities) in scenario()) {
        converges(&a, &b, &priorities, false)?;
    }

    #[test]
    fn any_delivery_order_converges_inside_the_window((a, b, priorities) in scenario()) {
        converges(&a, &b, &priorities, true)?;
    }
}
