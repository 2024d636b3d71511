//! Every strategy with its ties, the window edges, escalation, and who a conflict is with.

use std::collections::BTreeSet;

use crate::domain::decision::tests::{entity, outcome, policy, replay, t, to};
use crate::domain::decision::{decide, ConflictOutcome, Decision, EntitySnapshot, Incoming};
use crate::domain::CanonicalStatus::*;
use crate::domain::SystemId::{Agentapi, Github, Linear, Postgresql};
use crate::domain::{EntityKind, Policy, Strategy};

#[test]
fn priority_based_lower_number_wins() {
    let current = entity(InReview, Github, 0);
    let policy = policy(Strategy::PriorityBased);

    let linear = decide(Some(&current), &to(Linear, InProgress, 5), &policy);
    assert_eq!(outcome(&linear), ConflictOutcome::Won { to: InProgress });
    assert_eq!(linear.applied_status(), Some(InProgress));
    assert!(
        matches!(&linear, Decision::Conflict { rivals, .. } if *rivals == BTreeSet::from([Github]))
    );
    assert!(
        linear.reason().contains("linear wins"),
        "{}",
        linear.reason()
    );

    // Even with a later source timestamp, the agent API ranks below GitHub.
    let agent = decide(Some(&current), &to(Agentapi, InProgress, 900), &policy);
    assert_eq!(outcome(&agent), ConflictOutcome::Lost { keep: InReview });
    assert_eq!(agent.applied_status(), None);
    assert!(!agent.opens_conflict());
}

#[test]
fn priority_based_equal_priorities_go_to_the_later_report() {
    let mut policy = policy(Strategy::PriorityBased);
    policy.priorities.insert(Agentapi, 2);
    let current = entity(InReview, Github, 100);
    let later = decide(Some(&current), &to(Agentapi, Blocked, 101), &policy);
    assert_eq!(outcome(&later), ConflictOutcome::Won { to: Blocked });
    let earlier = decide(Some(&current), &to(Agentapi, Blocked, 99), &policy);
    assert_eq!(outcome(&earlier), ConflictOutcome::Lost { keep: InReview });
}

#[test]
fn timestamp_based_later_source_time_wins_and_ties_go_to_priority() {
    let policy = policy(Strategy::TimestampBased);
    let current = entity(InReview, Linear, 100);

    let later = decide(Some(&current), &to(Agentapi, Blocked, 101), &policy);
    assert_eq!(outcome(&later), ConflictOutcome::Won { to: Blocked });
    let earlier = decide(Some(&current), &to(Postgresql, Blocked, 99), &policy);
    assert_eq!(outcome(&earlier), ConflictOutcome::Lost { keep: InReview });

    // Same source time: postgresql (0) outranks linear (1), which outranks github (2).
    let tie_won = decide(Some(&current), &to(Postgresql, Blocked, 100), &policy);
    assert_eq!(outcome(&tie_won), ConflictOutcome::Won { to: Blocked });
    assert!(
        tie_won.reason().contains("tie goes to priority"),
        "{}",
        tie_won.reason()
    );
    let tie_lost = decide(Some(&current), &to(Github, Blocked, 100), &policy);
    assert_eq!(outcome(&tie_lost), ConflictOutcome::Lost { keep: InReview });
}

#[test]
fn manual_strategy_changes_nothing_and_opens_a_conflict() {
    let current = entity(InReview, Github, 0);
    let update = to(Linear, Done, 5);
    let decision = decide(Some(&current), &update, &policy(Strategy::Manual));
    assert_eq!(
        outcome(&decision),
        ConflictOutcome::Manual { proposed: Done }
    );
    assert!(decision.opens_conflict() && !decision.fires_alert());
    assert_eq!(decision.kind(), "conflict");
    let next = EntitySnapshot::after(
        Some(&current),
        EntityKind::Issue,
        &update,
        &decision,
        t(1000),
    )
    .unwrap();
    assert_eq!(
        (next.status, next.version, next.recent_conflicts),
        (InReview, 3, 1)
    );
}

#[test]
fn merge_takes_the_status_first_in_precedence() {
    let policy = policy(Strategy::Merge);
    let current = entity(InProgress, Github, 0);
    // Default precedence: done, cancelled, blocked, in_review, in_progress, todo, ...
    let further = decide(Some(&current), &to(Agentapi, InReview, 5), &policy);
    assert_eq!(outcome(&further), ConflictOutcome::Won { to: InReview });
    let behind = decide(Some(&current), &to(Postgresql, Todo, 5), &policy);
    assert_eq!(outcome(&behind), ConflictOutcome::Lost { keep: InProgress });

    let reversed = Policy {
        merge_precedence: vec![Todo],
        ..policy
    };
    let first = decide(Some(&current), &to(Agentapi, Todo, 5), &reversed);
    assert_eq!(outcome(&first), ConflictOutcome::Won { to: Todo });
}

#[test]
fn an_entity_kind_can_have_its_own_strategy() {
    let mut policy = policy(Strategy::PriorityBased);
    policy
        .strategy_by_kind
        .insert(EntityKind::Task, Strategy::TimestampBased);
    let mut current = entity(InReview, Linear, 100);
    let agent = to(Agentapi, Blocked, 200);
    assert_eq!(
        outcome(&decide(Some(&current), &agent, &policy)),
        ConflictOutcome::Lost { keep: InReview }
    );
    current.kind = EntityKind::Task;
    let decision = decide(Some(&current), &agent, &policy);
    assert_eq!(outcome(&decision), ConflictOutcome::Won { to: Blocked });
    assert!(matches!(
        decision,
        Decision::Conflict {
            strategy: Strategy::TimestampBased,
            ..
        }
    ));
}

#[test]
fn the_conflict_window_is_measured_in_source_time_and_includes_its_edge() {
    let current = entity(InReview, Linear, 0);
    let policy = Policy::default();
    let inside = decide(Some(&current), &to(Github, InProgress, 5000), &policy);
    assert_eq!(outcome(&inside), ConflictOutcome::Lost { keep: InReview });
    let outside = decide(Some(&current), &to(Github, InProgress, 5001), &policy);
    assert_eq!(outside.kind(), "applied");
    assert_eq!(outside.applied_status(), Some(InProgress));
    // An older update is within the window as much as a newer one.
    let before = decide(Some(&current), &to(Github, InProgress, -5000), &policy);
    assert_eq!(outcome(&before), ConflictOutcome::Lost { keep: InReview });
}

#[test]
fn a_pull_request_that_loses_is_never_claimed_corrected() {
    // Linear created the issue; a pull request opened 2 s later in source time loses
    // under priority_based, and nothing is written to it.
    let current = entity(Todo, Linear, 0);
    let mut pr = to(Github, InProgress, 2000);
    pr.correctable = false;
    let lost = decide(Some(&current), &pr, &Policy::default());
    assert_eq!(outcome(&lost), ConflictOutcome::Lost { keep: Todo });
    assert!(!lost.reason().contains("corrected"), "{}", lost.reason());
    assert!(lost.reason().contains("nothing is written back to github"));
    // 20 s later in source time it is no conflict at all, however close the arrivals.
    let later = decide(
        Some(&current),
        &to(Github, InProgress, 20_000),
        &Policy::default(),
    );
    assert_eq!(later.kind(), "applied", "{}", later.reason());
}

#[test]
fn the_third_conflict_inside_the_window_escalates() {
    let policy = Policy::default();
    let mut current = entity(InReview, Linear, 0);
    let mut kinds = Vec::new();
    for (i, status) in [InProgress, Blocked, Todo, Done].into_iter().enumerate() {
        let update = to(Agentapi, status, 10 + i as i64);
        let decision = decide(Some(&current), &update, &policy);
        kinds.push(outcome(&decision));
        current = EntitySnapshot::after(
            Some(&current),
            EntityKind::Issue,
            &update,
            &decision,
            t(100),
        )
        .unwrap();
        if i == 2 {
            assert!(decision.fires_alert() && decision.opens_conflict());
            assert!(
                decision.reason().contains("escalation_threshold 3"),
                "{}",
                decision.reason()
            );
        }
    }
    assert_eq!(
        kinds,
        [
            ConflictOutcome::Lost { keep: InReview },
            ConflictOutcome::Lost { keep: InReview },
            ConflictOutcome::Escalated { proposed: Todo },
            // Escalated: every later update joins the manual conflict.
            ConflictOutcome::Manual { proposed: Done },
        ]
    );
    assert!(current.manual);
    assert_eq!((current.status, current.recent_conflicts), (InReview, 3));

    // Compatible updates still change nothing; a forced one settles the entity.
    let agrees = decide(Some(&current), &to(Github, InReview, 50), &policy);
    assert_eq!(agrees.kind(), "noop");
    let resolve = Incoming {
        forced: true,
        catch_up: false,
        ..to(Postgresql, Blocked, 60)
    };
    let decision = decide(Some(&current), &resolve, &policy);
    assert_eq!(decision.applied_status(), Some(Blocked));
    let settled = EntitySnapshot::after(
        Some(&current),
        EntityKind::Issue,
        &resolve,
        &decision,
        t(100),
    )
    .unwrap();
    assert!(!settled.manual);
    assert_eq!((settled.recent_conflicts, settled.version), (0, 4));
}

#[test]
fn escalation_threshold_zero_never_escalates() {
    let policy = Policy {
        escalation_threshold: 0,
        ..Policy::default()
    };
    let mut current = entity(InReview, Linear, 0);
    current.recent_conflicts = 50;
    let decision = decide(Some(&current), &to(Agentapi, Todo, 5), &policy);
    assert_eq!(outcome(&decision), ConflictOutcome::Lost { keep: InReview });
}

#[test]
fn inside_the_window_a_conflict_is_with_every_system_asserting_the_status() {
    // The agent set todo and linear agreed: github ranks below linear, so it loses,
    // as it would had linear set todo itself.
    let current = replay(
        &Policy::default(),
        &[to(Agentapi, Todo, 1), to(Linear, Todo, 2)],
        0,
    );
    assert_eq!(current.confirmed_by, BTreeSet::from([Agentapi, Linear]));
    let decision = decide(
        Some(&current),
        &to(Github, InProgress, 3),
        &Policy::default(),
    );
    assert_eq!(outcome(&decision), ConflictOutcome::Lost { keep: Todo });
    assert!(matches!(&decision, Decision::Conflict { rivals, .. } if rivals.len() == 2));
}

#[test]
fn the_system_that_set_the_status_may_change_its_mind_inside_the_window() {
    let current = entity(InProgress, Github, 0);
    let decision = decide(Some(&current), &to(Github, InReview, 5), &Policy::default());
    assert_eq!(decision.kind(), "applied");
}

#[test]
fn a_catch_up_report_inside_the_window_is_decided_by_source_time_not_as_a_conflict() {
    // GitHub set in_review at source time 100; a backfill then reads Linear's older
    // in_progress (source time 50) and its newer done (source time 500), both within
    // the window by our clock.
    let current = entity(InReview, Github, 100);
    let policy = policy(Strategy::PriorityBased);
    let live = decide(Some(&current), &to(Linear, InProgress, 50), &policy);
    assert!(live.opens_conflict() || matches!(live, Decision::Conflict { .. }));

    let older = Incoming {
        catch_up: true,
        ..to(Linear, InProgress, 50)
    };
    let older = decide(Some(&current), &older, &policy);
    assert!(
        matches!(older, Decision::Stale { .. }),
        "an older catch-up report is stale, not a conflict: {older:?}"
    );

    let newer = Incoming {
        catch_up: true,
        ..to(Linear, Done, 500)
    };
    let newer = decide(Some(&current), &newer, &policy);
    assert_eq!(newer.applied_status(), Some(Done), "{newer:?}");
    assert!(!matches!(newer, Decision::Conflict { .. }), "{newer:?}");
}
