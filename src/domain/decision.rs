//! Conflict resolution and transition validation. [`decide`] turns one mapped update
//! into a [`Decision`] carrying its reason; [`EntitySnapshot::after`] is the bookkeeping
//! the caller persists with that decision. Pure: every time it compares is a source
//! time (or the commit time `after` is given), nothing is read from a clock or a
//! database, nothing is sent.
//!
//! # Order of checks
//! 1. No entity yet: it is created with the mapping's default (`Applied`).
//! 2. Stale: older than the last update accepted from the same system (`Stale`). The
//!    same timestamp again with a compatible status is a redelivery (`Noop`,
//!    "duplicate"); the same timestamp with another status is a second change within
//!    the system's clock resolution (GitHub reports whole seconds) and goes on.
//! 3. Compatible: the current status is in the mapping's set (`Noop`).
//! 4. Forced (a manual resolution or a rollback: an operator repairing state) is
//!    applied, past staleness, the terminal guard, the transition table, manual mode and
//!    conflicts. A table that could refuse a rollback would leave no way back. A forced
//!    update to the current status is a `Noop` (check 3) that still ends manual mode.
//! 5. Terminal guard: `done` / `cancelled` without `explicit` stays put (`Noop`, not
//!    `Rejected`: a pull request that merely mentions finished work is routine, and the
//!    other system is not corrected).
//! 6. Transition table: a move it does not allow is `Rejected`.
//! 7. Entity escalated to manual: the update joins the open manual conflict.
//! 8. Conflict (another system asserts the current status with a source time within
//!    `conflict_window` of the update's): escalation, else the strategy of the entity's
//!    kind decides.
//! 9. Otherwise ordered by source time (below) and `Applied` or `Stale`.
//!
//! The target of an update is always its mapping's default.
//!
//! # Convergence
//! The same updates delivered in any order must leave an entity in the same status.
//! Applying whatever arrives (bar same-system staleness) is last-arrival-wins across
//! systems and does not converge; nor does ordering updates while forgetting those that
//! changed nothing: if `linear todo@t3` arrives while the entity is already `todo` and
//! leaves no trace, `github in_progress@t2` applies after it in one order and is stale
//! in the other. So:
//! - **Compatible updates are accepted, not ignored**: `Noop { confirms: true }` records
//!   the source timestamp in `per_system_last_ts` and the system in `confirmed_by`, the
//!   systems asserting the current status.
//! - **Outside a conflict the latest source timestamp wins across systems**: an update
//!   older than the newest accepted update of *any* system is stale. Source time
//!   ties go to the lower priority number, then to system order. (While the window is
//!   open under `priority_based`, `merge` or `manual`, an update from the only system
//!   asserting the current status applies: it is changing its mind, and its own order
//!   is check 2.)
//! - **A conflict is with every system asserting the current status** inside the
//!   window, not only the last one to change it. `priority_based` orders by (priority,
//!   source time), so a system's later report beats its earlier one; `timestamp_based`
//!   by (source time, priority) against the newest accepted update of any system, the
//!   same order it uses outside the window.
//!
//! Each is a strict total order (timestamps distinct per system, system order breaking
//! priority ties), and the greatest update U decides: on arrival it applies or confirms,
//! and every update after it ranks below it. `decision/convergence.rs` tests this with
//! every update far outside the window and with every update inside it.
//!
//! Arrival order does matter, by design, for: the terminal guard (a non-explicit update
//! is judged against the status it finds), escalation (an alarm about exactly that),
//! `manual`, `merge` (a system's newer report makes its older one stale even when the
//! older status ranks higher), a restrictive transition table, and updates whose
//! source times straddle a window's edge. Source clocks differ between systems: a system whose clock
//! runs behind loses to other systems' changes made up to that skew before its own.

mod conflict;
#[cfg(test)]
mod convergence;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{CanonicalStatus, EntityKind, InboundMapping, Policy, Strategy, SystemId};

/// What `decide` needs to know about an existing entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitySnapshot {
    pub status: CanonicalStatus,
    /// Grows by one on every change; 1 for a new entity.
    pub version: i64,
    pub kind: EntityKind,
    /// System and source timestamp of the last change.
    pub last_system: Option<SystemId>,
    pub last_source_ts: Option<DateTime<Utc>>,
    /// When the last change was committed, by our clock (for the record: windows are
    /// measured in source time).
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Newest source timestamp accepted (applied or confirmed) from each system.
    pub per_system_last_ts: BTreeMap<SystemId, DateTime<Utc>>,
    /// Systems that asserted the current status since it was set, its setter included.
    /// Empty is read as `{last_system}`.
    pub confirmed_by: BTreeSet<SystemId>,
    /// Conflicts on this entity inside the window (the caller's count).
    pub recent_conflicts: u32,
    /// Escalated to manual resolution: only a forced update changes it.
    pub manual: bool,
}

/// One update, mapped, as `decide` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub source: SystemId,
    pub mapping: InboundMapping,
    pub source_ts: DateTime<Utc>,
    /// An explicit reopen: the only way out of `done` / `cancelled`.
    pub explicit: bool,
    /// A manual resolution or a rollback: applied past every check but compatibility.
    pub forced: bool,
    /// A report of past state read back by a backfill or reconciliation, not a live
    /// change: it arrives whenever the catch-up runs, so it never opens or joins a
    /// conflict window and is decided by source timestamps alone.
    pub catch_up: bool,
    /// The object the update is about can be written back: a conflict it loses
    /// corrects it. Not so for a pull request (its state is git's) or an update about
    /// no external object.
    pub correctable: bool,
    /// The systems an applied change is written to (the entity's other writable
    /// links), so that a reason never claims a correction no write makes.
    pub reach: BTreeSet<SystemId>,
}

/// The outcome of one update, with the reason recorded next to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    Applied {
        to: CanonicalStatus,
        reason: String,
    },
    /// Nothing changes. `confirms`: the update asserts the current status; the caller
    /// records its timestamp and system (see [`EntitySnapshot::after`]).
    Noop {
        confirms: bool,
        reason: String,
    },
    Stale {
        reason: String,
    },
    Rejected {
        reason: String,
    },
    /// `rivals`: the other systems asserting the current status inside the window.
    Conflict {
        outcome: ConflictOutcome,
        strategy: Strategy,
        rivals: BTreeSet<SystemId>,
        reason: String,
    },
}

/// How a conflict ended, and so what the caller writes outward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ConflictOutcome {
    /// The incoming status is applied; the rivals still show the old one and are
    /// corrected outward.
    Won { to: CanonicalStatus },
    /// Nothing is applied; the incoming system is corrected back to `keep`.
    Lost { keep: CanonicalStatus },
    /// Nothing is applied; an open conflict waits for a person.
    Manual { proposed: CanonicalStatus },
    /// Nothing is applied; the entity goes to manual resolution and an alert fires.
    Escalated { proposed: CanonicalStatus },
}

impl ConflictOutcome {
    /// The `outcome` label of `statsync_conflicts_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ConflictOutcome::Won { .. } => "won",
            ConflictOutcome::Lost { .. } => "lost",
            ConflictOutcome::Manual { .. } => "manual",
            ConflictOutcome::Escalated { .. } => "escalated",
        }
    }
}

impl Decision {
    /// The status the entity moves to, when it moves.
    pub fn applied_status(&self) -> Option<CanonicalStatus> {
        match self {
            Decision::Applied { to, .. }
            | Decision::Conflict {
                outcome: ConflictOutcome::Won { to },
                ..
            } => Some(*to),
            _ => None,
        }
    }

    /// The decision's name in the API (`POST /api/v1/status` answers).
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Applied { .. } => "applied",
            Decision::Noop { .. } => "noop",
            Decision::Stale { .. } => "stale",
            Decision::Rejected { .. } => "rejected",
            Decision::Conflict { .. } => "conflict",
        }
    }

    /// Leaves an open conflict in the manual queue.
    pub fn opens_conflict(&self) -> bool {
        matches!(
            self,
            Decision::Conflict {
                outcome: ConflictOutcome::Manual { .. } | ConflictOutcome::Escalated { .. },
                ..
            }
        )
    }

    /// The caller fires `alert_fired`.
    pub fn fires_alert(&self) -> bool {
        matches!(
            self,
            Decision::Conflict {
                outcome: ConflictOutcome::Escalated { .. },
                ..
            }
        )
    }

    /// Adds what the caller changed about the update before deciding (a source time
    /// taken as the time received) to the reason.
    pub fn annotate(&mut self, note: &str) {
        match self {
            Decision::Applied { reason, .. }
            | Decision::Noop { reason, .. }
            | Decision::Stale { reason }
            | Decision::Rejected { reason }
            | Decision::Conflict { reason, .. } => {
                reason.push_str("; ");
                reason.push_str(note);
            }
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Applied { reason, .. }
            | Decision::Noop { reason, .. }
            | Decision::Stale { reason }
            | Decision::Rejected { reason }
            | Decision::Conflict { reason, .. } => reason,
        }
    }
}

/// Decides what one update does to an entity (`None`: it does not exist yet).
pub fn decide(current: Option<&EntitySnapshot>, incoming: &Incoming, policy: &Policy) -> Decision {
    let target = incoming.mapping.default_status();
    let what = describe(incoming);
    let Some(current) = current else {
        return Decision::Applied {
            to: target,
            reason: format!("new entity: {what} creates it as {target}"),
        };
    };
    let status = current.status;

    if !incoming.forced {
        if let Some(&last) = current.per_system_last_ts.get(&incoming.source) {
            if incoming.source_ts < last {
                return Decision::Stale {
                    reason: format!(
                        "stale: {what} from {} is older than the last update accepted from {} ({})",
                        ts(incoming.source_ts),
                        incoming.source,
                        ts(last),
                    ),
                };
            }
            if incoming.source_ts == last && incoming.mapping.contains(status) {
                return Decision::Noop {
                    confirms: true,
                    reason: format!(
                        "duplicate: {what} from {} was already accepted",
                        ts(incoming.source_ts)
                    ),
                };
            }
        }
    }

    if incoming.mapping.contains(status) {
        let reason = if incoming.forced {
            format!("forced (manual resolution or rollback): already {status}")
        } else {
            format!("{what} is compatible with {status}")
        };
        return Decision::Noop {
            confirms: true,
            reason,
        };
    }

    if incoming.forced {
        return Decision::Applied {
            to: target,
            reason: format!("forced (manual resolution or rollback): {status} → {target}"),
        };
    }

    if status.is_terminal() && !incoming.explicit {
        return Decision::Noop {
            confirms: false,
            reason: format!(
                "terminal guard: {status} leaves only through an explicit reopen, and {what} \
                 is not one"
            ),
        };
    }

    if !policy.transitions.allows(status, target) {
        let allowed = policy
            .transitions
            .allowed_from(status)
            .map(|to| to.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        return Decision::Rejected {
            reason: format!(
                "transition {status} → {target} is not allowed by sync.transitions (from \
                 {status}: [{allowed}])"
            ),
        };
    }

    if current.manual {
        return Decision::Conflict {
            outcome: ConflictOutcome::Manual { proposed: target },
            strategy: Strategy::Manual,
            rivals: BTreeSet::new(),
            reason: format!(
                "the entity is escalated to manual resolution: {what} ({target}) joins its open \
                 conflict"
            ),
        };
    }

    let strategy = policy.strategy_for(current.kind);
    // Windows are measured in source time, never by arrival: a backlog drained in one
    // burst is decided as if each delivery had arrived live.
    // More than a window older than a change already accepted from another system:
    // outside the window the later source time wins, whatever rivals are inside it.
    if let Some((system, last)) = newest_accepted(current, policy) {
        if system != incoming.source && last - incoming.source_ts > policy.conflict_window {
            return Decision::Stale {
                reason: format!(
                    "stale: {what} from {} is older than the {system} update from {} already \
                     accepted, by more than the conflict window; across systems the latest \
                     source timestamp wins",
                    ts(incoming.source_ts),
                    ts(last),
                ),
            };
        }
    }
    if !incoming.catch_up {
        let rivals = rivals(current, incoming, policy.conflict_window);
        if !rivals.is_empty() {
            return conflict::resolve(current, incoming, policy, strategy, rivals);
        }
    }
    // The only system asserting the status changing its mind inside the window: its
    // own order is check 2. Anything else is ordered by source time across systems.
    let changing_its_mind = !incoming.catch_up
        && asserters(current) == BTreeSet::from([incoming.source])
        && current
            .last_source_ts
            .is_some_and(|at| within(at, incoming.source_ts, policy.conflict_window));

    if !changing_its_mind || strategy == Strategy::TimestampBased {
        if let Some((system, last)) = newest_accepted(current, policy) {
            if time_key(policy, incoming.source, incoming.source_ts)
                < time_key(policy, system, last)
            {
                return Decision::Stale {
                    reason: format!(
                        "stale: {what} from {} is older than the {system} update from {} already \
                         accepted; across systems the latest source timestamp wins",
                        ts(incoming.source_ts),
                        ts(last),
                    ),
                };
            }
        }
    }

    Decision::Applied {
        to: target,
        reason: format!("{what}: {status} → {target}"),
    }
}

impl EntitySnapshot {
    /// The entity as the caller persists it after `decision` (from [`decide`] with the
    /// same arguments). `None` only when there was no entity and nothing was created.
    /// Beyond status and version this records which systems assert the current status
    /// and their timestamps, on which later decisions depend (see the module doc).
    pub fn after(
        current: Option<&EntitySnapshot>,
        kind: EntityKind,
        incoming: &Incoming,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Option<EntitySnapshot> {
        let source = incoming.source;
        let Some(current) = current else {
            let status = decision.applied_status()?;
            return Some(EntitySnapshot {
                status,
                version: 1,
                kind,
                last_system: Some(source),
                last_source_ts: Some(incoming.source_ts),
                last_applied_at: Some(now),
                per_system_last_ts: BTreeMap::from([(source, incoming.source_ts)]),
                confirmed_by: BTreeSet::from([source]),
                recent_conflicts: 0,
                manual: false,
            });
        };
        let mut next = current.clone();
        if let Some(status) = decision.applied_status() {
            next.status = status;
            next.version += 1;
            next.last_system = Some(source);
            next.last_source_ts = Some(incoming.source_ts);
            next.last_applied_at = Some(now);
            next.confirmed_by = BTreeSet::from([source]);
            next.accept(source, incoming.source_ts);
        } else if let Decision::Noop { confirms: true, .. } = decision {
            if next.confirmed_by.is_empty() {
                next.confirmed_by.extend(current.last_system);
            }
            next.confirmed_by.insert(source);
            next.accept(source, incoming.source_ts);
        }
        if incoming.forced {
            // A person settled it, even by keeping the status it had: the entity leaves
            // manual mode with a clean slate.
            next.manual = false;
            next.recent_conflicts = 0;
        }
        if let Decision::Conflict { outcome, .. } = decision {
            // Joining an already escalated entity's open conflict is not a new conflict.
            if !current.manual {
                next.recent_conflicts = next.recent_conflicts.saturating_add(1);
            }
            if let ConflictOutcome::Escalated { .. } = outcome {
                next.manual = true;
            }
        }
        Some(next)
    }

    fn accept(&mut self, system: SystemId, source_ts: DateTime<Utc>) {
        let last = self.per_system_last_ts.entry(system).or_insert(source_ts);
        if *last < source_ts {
            *last = source_ts;
        }
    }
}

/// The other systems asserting the current status with a source time inside the
/// window around the incoming update's.
fn rivals(
    current: &EntitySnapshot,
    incoming: &Incoming,
    window: chrono::TimeDelta,
) -> BTreeSet<SystemId> {
    let mut rivals = asserters(current);
    rivals.remove(&incoming.source);
    rivals.retain(|rival| {
        let asserted = current.per_system_last_ts.get(rival).copied().or(
            match current.last_system == Some(*rival) {
                true => current.last_source_ts,
                false => None,
            },
        );
        asserted.is_some_and(|at| within(at, incoming.source_ts, window))
    });
    rivals
}

/// The systems asserting the current status, its setter included.
fn asserters(current: &EntitySnapshot) -> BTreeSet<SystemId> {
    let mut systems = current.confirmed_by.clone();
    if systems.is_empty() {
        systems.extend(current.last_system);
    }
    systems
}

/// Two source times at most `window` apart.
fn within(a: DateTime<Utc>, b: DateTime<Utc>, window: chrono::TimeDelta) -> bool {
    (a - b).abs() <= window
}

/// The newest accepted update of any system, in [`time_key`] order.
fn newest_accepted(current: &EntitySnapshot, policy: &Policy) -> Option<(SystemId, DateTime<Utc>)> {
    let last_change = current.last_system.zip(current.last_source_ts);
    current
        .per_system_last_ts
        .iter()
        .map(|(system, ts)| (*system, *ts))
        .chain(last_change)
        .max_by_key(|(system, ts)| time_key(policy, *system, *ts))
}

/// Source time first; ties to the lower priority number, then to system order.
type TimeKey = (DateTime<Utc>, Reverse<u8>, Reverse<SystemId>);

fn time_key(policy: &Policy, system: SystemId, ts: DateTime<Utc>) -> TimeKey {
    (ts, Reverse(policy.priority(system)), Reverse(system))
}

/// Priority first (lower number ranks higher), then source time, then system order.
type PriorityKey = (Reverse<u8>, DateTime<Utc>, Reverse<SystemId>);

fn priority_key(policy: &Policy, system: SystemId, ts: DateTime<Utc>) -> PriorityKey {
    (Reverse(policy.priority(system)), ts, Reverse(system))
}

fn describe(incoming: &Incoming) -> String {
    format!("{} `{}`", incoming.source, incoming.mapping.native())
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
