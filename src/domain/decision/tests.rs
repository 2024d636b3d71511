//! Each check of `decide` outside conflicts, and the bookkeeping of
//! `EntitySnapshot::after`. The fixtures here serve `conflict/tests.rs` too.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::domain::CanonicalStatus::{self, *};
use crate::domain::SystemId::{Agentapi, Github, Linear, Postgresql};
use crate::domain::{
    GithubIssueState, GithubPullRequestState, MappingTable, NativeStatus, TransitionTable,
};

pub(super) fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).unwrap() + TimeDelta::milliseconds(ms)
}

/// An entity whose status `system` set at source time and commit time `at_ms`.
pub(super) fn entity(status: CanonicalStatus, system: SystemId, at_ms: i64) -> EntitySnapshot {
    EntitySnapshot {
        status,
        version: 3,
        kind: EntityKind::Issue,
        last_system: Some(system),
        last_source_ts: Some(t(at_ms)),
        last_applied_at: Some(t(at_ms)),
        per_system_last_ts: BTreeMap::from([(system, t(at_ms))]),
        confirmed_by: BTreeSet::from([system]),
        recent_conflicts: 0,
        manual: false,
    }
}

pub(super) fn update(source: SystemId, native: NativeStatus, ts_ms: i64) -> Incoming {
    Incoming {
        source,
        mapping: MappingTable::default().inbound(&native, None).unwrap(),
        source_ts: t(ts_ms),
        explicit: false,
        forced: false,
        catch_up: false,
        correctable: true,
        reach: BTreeSet::from([Github, Linear, Agentapi]),
    }
}

pub(super) fn to(source: SystemId, status: CanonicalStatus, ts_ms: i64) -> Incoming {
    Incoming {
        explicit: true,
        ..update(source, NativeStatus::Canonical { status }, ts_ms)
    }
}

pub(super) fn pr_opened(ts_ms: i64) -> Incoming {
    let pr = GithubPullRequestState::Open;
    update(Github, NativeStatus::GithubPullRequest { pr }, ts_ms)
}

pub(super) fn policy(strategy: Strategy) -> Policy {
    Policy {
        strategy,
        ..Policy::default()
    }
}

pub(super) fn outcome(decision: &Decision) -> ConflictOutcome {
    match decision {
        Decision::Conflict { outcome, .. } => *outcome,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn a_new_entity_starts_at_the_mapping_default() {
    let open = update(Github, NativeStatus::GithubIssue(GithubIssueState::Open), 0);
    let decision = decide(None, &open, &Policy::default());
    assert_eq!(decision.applied_status(), Some(Todo));
    let created = EntitySnapshot::after(None, EntityKind::Issue, &open, &decision, t(7)).unwrap();
    assert_eq!((created.status, created.version), (Todo, 1));
    assert_eq!(created.last_applied_at, Some(t(7)));
    assert_eq!(created.per_system_last_ts, BTreeMap::from([(Github, t(0))]));
}

#[test]
fn an_update_older_than_the_last_from_its_system_is_stale() {
    let current = entity(InProgress, Github, 100);
    let decision = decide(Some(&current), &to(Github, Done, 99), &Policy::default());
    assert_eq!(decision.kind(), "stale");
    assert!(decision
        .reason()
        .contains("older than the last update accepted from github"));
}

#[test]
fn the_same_report_again_is_a_duplicate() {
    let current = entity(InProgress, Github, 100);
    let decision = decide(
        Some(&current),
        &to(Github, InProgress, 100),
        &Policy::default(),
    );
    assert!(matches!(decision, Decision::Noop { confirms: true, .. }));
    assert!(
        decision.reason().starts_with("duplicate"),
        "{}",
        decision.reason()
    );
    // Same instant, another status: a second change within the system's clock resolution.
    let decision = decide(
        Some(&current),
        &to(Github, InReview, 100),
        &Policy::default(),
    );
    assert_eq!(decision.applied_status(), Some(InReview));
}

#[test]
fn a_compatible_update_changes_nothing_and_says_why() {
    let current = entity(InReview, Linear, 0);
    let open = update(
        Github,
        NativeStatus::GithubIssue(GithubIssueState::Open),
        10,
    );
    let decision = decide(Some(&current), &open, &Policy::default());
    assert_eq!(
        decision,
        Decision::Noop {
            confirms: true,
            reason: "github `open` is compatible with in_review".into()
        }
    );
}

#[test]
fn an_opened_pull_request_does_not_reopen_finished_work() {
    let current = entity(Done, Github, 0);
    let decision = decide(Some(&current), &pr_opened(10), &Policy::default());
    assert!(
        matches!(
            decision,
            Decision::Noop {
                confirms: false,
                ..
            }
        ),
        "{decision:?}"
    );
    assert!(
        decision.reason().contains("terminal"),
        "{}",
        decision.reason()
    );
    let next = EntitySnapshot::after(
        Some(&current),
        EntityKind::Issue,
        &pr_opened(10),
        &decision,
        t(60_000),
    )
    .unwrap();
    assert_eq!(next, current);

    let reopen = Incoming {
        explicit: true,
        ..update(
            Github,
            NativeStatus::GithubIssue(GithubIssueState::Open),
            10,
        )
    };
    let decision = decide(Some(&current), &reopen, &Policy::default());
    assert_eq!(decision.kind(), "applied");
    assert_eq!(decision.applied_status(), Some(Todo));
}

#[test]
fn the_transition_table_rejects_moves_it_does_not_allow() {
    let policy = Policy {
        transitions: TransitionTable::default().restrict(Backlog, [Todo, Cancelled]),
        ..Policy::default()
    };
    let current = entity(Backlog, Linear, 0);
    let decision = decide(Some(&current), &to(Linear, InReview, 10), &policy);
    assert_eq!(decision.kind(), "rejected");
    assert!(
        decision.reason().contains("backlog → in_review"),
        "{}",
        decision.reason()
    );
    let decision = decide(Some(&current), &to(Linear, Todo, 10), &policy);
    assert_eq!(decision.applied_status(), Some(Todo));
    // Statuses without an entry are unrestricted.
    let current = entity(Todo, Linear, 0);
    let decision = decide(Some(&current), &to(Linear, Done, 10), &policy);
    assert_eq!(decision.applied_status(), Some(Done));
}

#[test]
fn a_forced_update_passes_staleness_the_terminal_guard_and_the_table() {
    let policy = Policy {
        transitions: TransitionTable::default().restrict(Done, []),
        ..Policy::default()
    };
    let current = entity(Done, Postgresql, 1000);
    let rollback = Incoming {
        forced: true,
        catch_up: false,
        explicit: false,
        ..to(Postgresql, InReview, 10)
    };
    let decision = decide(Some(&current), &rollback, &policy);
    assert_eq!(decision.applied_status(), Some(InReview));
    // A stale timestamp does not move the system's watermark back.
    let next = EntitySnapshot::after(
        Some(&current),
        EntityKind::Issue,
        &rollback,
        &decision,
        t(1001),
    )
    .unwrap();
    assert_eq!(next.per_system_last_ts[&Postgresql], t(1000));
}

#[test]
fn outside_the_window_an_update_older_than_any_accepted_one_is_stale() {
    let current = entity(InReview, Linear, 100_000);
    let late_delivery = to(Github, InProgress, 50_000);
    let decision = decide(Some(&current), &late_delivery, &Policy::default());
    assert_eq!(decision.kind(), "stale");
    assert!(
        decision.reason().contains("linear update"),
        "{}",
        decision.reason()
    );
    let newer = to(Github, InProgress, 150_000);
    assert_eq!(
        decide(Some(&current), &newer, &Policy::default()).kind(),
        "applied"
    );
}

/// Runs `updates` through `decide` + `after`, committing each `step_ms` after the last.
pub(super) fn replay(policy: &Policy, updates: &[Incoming], step_ms: i64) -> EntitySnapshot {
    let mut current: Option<EntitySnapshot> = None;
    for (i, update) in updates.iter().enumerate() {
        let now = t(i as i64 * step_ms);
        let decision = decide(current.as_ref(), update, policy);
        current =
            EntitySnapshot::after(current.as_ref(), EntityKind::Issue, update, &decision, now);
    }
    current.unwrap()
}

#[test]
fn a_forced_resolution_that_keeps_the_status_ends_manual_mode() {
    let mut current = entity(InReview, Linear, 0);
    current.manual = true;
    current.recent_conflicts = 3;
    let keep = Incoming {
        forced: true,
        catch_up: false,
        ..to(Postgresql, InReview, 10)
    };
    let decision = decide(Some(&current), &keep, &Policy::default());
    assert_eq!(decision.kind(), "noop");
    let next =
        EntitySnapshot::after(Some(&current), EntityKind::Issue, &keep, &decision, t(20)).unwrap();
    assert!(!next.manual);
    assert_eq!(
        (next.recent_conflicts, next.version, next.status),
        (0, 3, InReview)
    );
}

#[test]
fn a_compatible_update_still_orders_the_ones_after_it() {
    // linear todo@3h confirms the status github set at 1h; agentapi in_progress@2h is
    // then older than an accepted update, whichever of the two arrived first.
    let policy = Policy::default();
    let hour = 3_600_000;
    let a = [
        to(Github, Todo, hour),
        to(Linear, Todo, 3 * hour),
        to(Agentapi, InProgress, 2 * hour),
    ];
    let b = [
        to(Github, Todo, hour),
        to(Agentapi, InProgress, 2 * hour),
        to(Linear, Todo, 3 * hour),
    ];
    let (a, b) = (
        replay(&policy, &a, 3_600_000),
        replay(&policy, &b, 3_600_000),
    );
    assert_eq!((a.status, b.status), (Todo, Todo));
    assert_eq!((a.version, b.version), (1, 3));
}

#[test]
fn decisions_name_themselves_as_the_api_does() {
    let current = entity(InReview, Github, 0);
    let policy = Policy::default();
    let cases = [
        (to(Github, InReview, 1), "noop"),
        (to(Github, Todo, -1), "stale"),
        (to(Linear, Todo, 1), "conflict"),
        (to(Github, Todo, 1), "applied"),
    ];
    for (update, kind) in cases {
        assert_eq!(decide(Some(&current), &update, &policy).kind(), kind);
    }
    let rejected = Decision::Rejected { reason: "r".into() };
    assert_eq!(
        (
            rejected.kind(),
            rejected.applied_status(),
            rejected.reason()
        ),
        ("rejected", None, "r")
    );
}

#[test]
fn decisions_serialize_with_their_name_and_reason() {
    let decision = Decision::Conflict {
        outcome: ConflictOutcome::Won { to: Done },
        strategy: Strategy::PriorityBased,
        rivals: BTreeSet::from([Github]),
        reason: "why".into(),
    };
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"decision": "conflict", "outcome": {"outcome": "won", "to": "done"},
            "strategy": "priority_based", "rivals": ["github"], "reason": "why"})
    );
}
