//! Settles one conflict: an update whose status differs from the one other systems
//! asserted inside the window. Escalation first, then the strategy of the entity's kind.
//! Never changes anything itself; the decision says what the caller applies and corrects.

use std::collections::BTreeSet;

use super::{describe, newest_accepted, priority_key, time_key, ts};
use super::{ConflictOutcome, Decision, EntitySnapshot, Incoming};
use crate::domain::{Policy, Strategy, SystemId};

#[cfg(test)]
mod tests;

pub(super) fn resolve(
    current: &EntitySnapshot,
    incoming: &Incoming,
    policy: &Policy,
    strategy: Strategy,
    rivals: BTreeSet<SystemId>,
) -> Decision {
    let status = current.status;
    let target = incoming.mapping.default_status();
    let source = incoming.source;
    let head = format!(
        "conflict: {} wants {target} while {} asserted {status} within {} ms of it in source \
         time",
        describe(incoming),
        names(&rivals),
        policy.conflict_window.num_milliseconds(),
    );
    let conflict = |outcome, reason| Decision::Conflict {
        outcome,
        strategy,
        rivals: rivals.clone(),
        reason,
    };

    if policy.escalates(current.recent_conflicts) {
        let outcome = ConflictOutcome::Escalated { proposed: target };
        let reason = format!(
            "{head}; conflict {} on this entity inside the window reaches escalation_threshold \
             {}: escalated to manual resolution, nothing changes",
            current.recent_conflicts.saturating_add(1),
            policy.escalation_threshold,
        );
        return conflict(outcome, reason);
    }

    let (won, why) = match strategy {
        Strategy::Manual => {
            let outcome = ConflictOutcome::Manual { proposed: target };
            let reason = format!("{head}; manual: nothing changes until the conflict is resolved");
            return conflict(outcome, reason);
        }
        Strategy::PriorityBased => by_priority(current, incoming, policy, &rivals),
        Strategy::TimestampBased => by_timestamp(current, incoming, policy),
        Strategy::Merge => {
            let won = policy.merge_rank(target) < policy.merge_rank(status);
            let (first, second) = if won {
                (target, status)
            } else {
                (status, target)
            };
            (
                won,
                format!("merge: {first} precedes {second} in merge_precedence"),
            )
        }
    };
    // Say only what the writes that follow will do.
    if won {
        let outcome = ConflictOutcome::Won { to: target };
        let corrected = match incoming.reach.is_empty() {
            true => "no other linked object is written".to_owned(),
            false => format!("{} corrected", names(&incoming.reach)),
        };
        let reason = format!("{head}; {why}: {status} → {target}, {corrected}");
        conflict(outcome, reason)
    } else {
        let outcome = ConflictOutcome::Lost { keep: status };
        let corrected = match incoming.correctable {
            true => format!("{source} corrected back"),
            false => format!(
                "nothing is written back to {source} (a pull request's state is git's; an \
                 update about no external object has nothing to correct)"
            ),
        };
        let reason = format!("{head}; {why}: stays {status}, {corrected}");
        conflict(outcome, reason)
    }
}

/// The incoming system must outrank every rival; a rival of equal priority is beaten
/// only by a later source timestamp.
fn by_priority(
    current: &EntitySnapshot,
    incoming: &Incoming,
    policy: &Policy,
    rivals: &BTreeSet<SystemId>,
) -> (bool, String) {
    let source = incoming.source;
    let rival_ts = |rival: SystemId| {
        current
            .per_system_last_ts
            .get(&rival)
            .copied()
            .or(current.last_source_ts)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    };
    let strongest = rivals
        .iter()
        .map(|rival| (priority_key(policy, *rival, rival_ts(*rival)), *rival))
        .max();
    let Some((strongest_key, strongest)) = strongest else {
        return (true, "priority_based: no rival".to_owned());
    };
    let won = priority_key(policy, source, incoming.source_ts) > strongest_key;
    let (p_in, p_rival) = (policy.priority(source), policy.priority(strongest));
    let why = if p_in != p_rival {
        let winner = if won { source } else { strongest };
        format!(
            "priority_based: {winner} wins ({source} priority {p_in}, {strongest} priority \
             {p_rival}; lower wins)"
        )
    } else {
        format!(
            "priority_based: {source} and {strongest} share priority {p_in}; the later source \
             timestamp wins ({} vs {})",
            ts(incoming.source_ts),
            ts(rival_ts(strongest)),
        )
    };
    (won, why)
}

/// The incoming update must be at least as new as the newest accepted update of any
/// system (equal only when that is its own system's, at the same instant).
fn by_timestamp(current: &EntitySnapshot, incoming: &Incoming, policy: &Policy) -> (bool, String) {
    let source = incoming.source;
    let Some((newest, newest_ts)) = newest_accepted(current, policy) else {
        return (true, "timestamp_based: nothing accepted before".to_owned());
    };
    let won = time_key(policy, source, incoming.source_ts) >= time_key(policy, newest, newest_ts);
    let why = if newest == source {
        format!(
            "timestamp_based: a second {source} report at the same source time {}; the later \
             arrival stands",
            ts(newest_ts)
        )
    } else if incoming.source_ts != newest_ts {
        let relation = if won { "newer" } else { "older" };
        format!(
            "timestamp_based: {source}'s update from {} is {relation} than {newest}'s from {}",
            ts(incoming.source_ts),
            ts(newest_ts),
        )
    } else {
        let winner = if won { source } else { newest };
        format!(
            "timestamp_based: {source} and {newest} report the same source time {}; the tie \
             goes to priority: {winner} (priority {})",
            ts(newest_ts),
            policy.priority(winner),
        )
    };
    (won, why)
}

fn names(systems: &BTreeSet<SystemId>) -> String {
    systems
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
