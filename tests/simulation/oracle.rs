//! What must hold once everything is quiet. Each check reads what statsync recorded
//! (entities, history with the delivery each decision came from, outbox rows) and what
//! the stand-ins saw (every change and call), and answers what it found wrong.
//!
//! - Every system shows the status PostgreSQL holds, through the mappings, unless the
//!   last change made there was a person's that statsync recorded as stale, rejected,
//!   kept out by the terminal guard or left to a person (a conflict).
//! - The final status is the latest person's change by source time, unless a recorded
//!   conflict decision or the terminal guard says why not.
//! - No person's change is ever decided as an echo; no webhook about statsync's own
//!   write is ever applied.
//! - Every successful write statsync made is one outbox row, written by an applied or
//!   conflict decision at that version; no decision makes two rows for one object; the
//!   writes are bounded by the people's changes times the linked objects (no loop).
//! - Nothing is dead-lettered and no accepted delivery failed.

use std::collections::{BTreeMap, BTreeSet};

use statsync::domain::{CanonicalStatus, MappingTable, NativeStatus};

use super::standins::Shared;
use super::world::{linear_state, Actor, Change, World, PROJECT, REPO, STATUS_FIELD, TEAM};

const ECHO: &str = "echo of statsync's own write";
const WINDOW_MS: i64 = 5_000;

/// One decision, with the delivery it came from (a read-back names its original).
#[derive(Debug, Clone)]
struct Decision {
    entity: String,
    system: String,
    source_ms: i64,
    decision: String,
    reason: String,
    version: i64,
    delivery: Option<String>,
}

#[derive(Debug, Clone)]
struct Row {
    entity: String,
    external: String,
    status: String,
    state: String,
    operation: String,
    version: i64,
}

fn project_of(object: &str) -> &'static str {
    if object.starts_with("linear:") {
        TEAM
    } else {
        REPO
    }
}

fn allows(native: &NativeStatus, object: &str, status: CanonicalStatus) -> bool {
    MappingTable::default()
        .inbound(native, Some(project_of(object)))
        .map(|m| m.contains(status))
        .unwrap_or(false)
}

fn default_of(native: &NativeStatus, object: &str) -> Option<CanonicalStatus> {
    MappingTable::default()
        .inbound(native, Some(project_of(object)))
        .ok()
        .map(|m| m.default_status())
}

fn lock(world: &Shared) -> std::sync::MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why no one can know what a change meant, when that is so: two changes to one piece
/// of work in the same second of GitHub's clock (whole seconds; nothing orders them,
/// whether they were made to one object or to an issue and its board item), or a board
/// edit whose delivery named no value and whose item statsync wrote before the value was
/// read back (the read finds statsync's value, not the person's).
fn unknowable(w: &World, change: &Change) -> Option<&'static str> {
    let later = w
        .changes
        .iter()
        .skip_while(|c| !std::ptr::eq(*c, change))
        .skip(1);
    let system = |object: &str| object.split(':').next().unwrap_or_default().to_owned();
    let person = |c: &Change| matches!(c.actor, Actor::Person(_));
    let tie = w.changes.iter().any(|c| {
        !std::ptr::eq(c, change)
            && c.source_ms == change.source_ms
            && c.native != change.native
            && (c.object == change.object
                || (c.unit == change.unit
                    && person(c)
                    && person(change)
                    && system(&c.object) == system(&change.object)))
    });
    if tie {
        return Some("a second change to the same work in the same second of one system's clock");
    }
    let overwritten = change.what.contains("value omitted")
        && later
            .clone()
            .any(|c| c.object == change.object && c.actor == Actor::Statsync);
    overwritten.then_some("a board edit without its value, overwritten before the read-back")
}

/// The latest person's change to a unit's objects by source time (ties: the later one).
fn latest_person_change(w: &World, unit: usize) -> Option<Change> {
    w.changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.unit == unit && matches!(c.actor, Actor::Person(_)))
        .max_by_key(|(i, c)| (c.source_ms, *i))
        .map(|(_, c)| c.clone())
}

/// The status a person resolving `entity`'s conflict picks: the latest person's change.
pub fn latest_person_status(world: &Shared, entity: &str) -> Option<String> {
    let w = lock(world);
    let unit = w
        .units
        .iter()
        .position(|u| u.entity.as_deref() == Some(entity))?;
    let change = latest_person_change(&w, unit)?;
    default_of(&change.native, &change.object).map(|s| s.as_str().to_owned())
}

/// The native value an object shows now.
fn native_now(w: &World, object: &str) -> Option<NativeStatus> {
    if let Some(id) = object.strip_prefix("linear:") {
        let issue = w.linear.get(id)?;
        let (sid, name, ty, _) = linear_state(issue.state);
        return Some(NativeStatus::Linear {
            state_id: Some(sid.into()),
            name: Some(name.into()),
            state_type: Some(ty.into()),
        });
    }
    let id = object.strip_prefix("github:")?;
    if let Some(item) = w.items.get(id) {
        return Some(NativeStatus::GithubProjectItem {
            project_node_id: PROJECT.into(),
            field_node_id: STATUS_FIELD.into(),
            option_name: Some(item.option?.into()),
        });
    }
    let number: u64 = id.rsplit_once('#')?.1.parse().ok()?;
    let issue = w.issues.get(&number)?;
    Some(NativeStatus::GithubIssue(match issue.open {
        true => statsync::domain::GithubIssueState::Open,
        false => statsync::domain::GithubIssueState::Closed {
            state_reason: issue.reason.clone(),
        },
    }))
}

async fn decisions(db: &tokio_postgres::Client) -> Result<Vec<Decision>, String> {
    let rows = db
        .query(
            "SELECT t.entity_id::text, t.system, t.source_ts, t.decision, t.reason, t.version,
                    CASE WHEN i.event_type = 'projects_v2_item.status_read'
                         THEN convert_from(i.body, 'UTF8')::jsonb #>> '{statsync_lookup,delivery}'
                         ELSE i.delivery_id END
             FROM status_transitions t LEFT JOIN inbound_events i ON i.id = t.inbound_event_id
             ORDER BY t.id",
            &[],
        )
        .await
        .map_err(|e| format!("reading the history: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| Decision {
            entity: r.get(0),
            system: r.get(1),
            source_ms: r
                .get::<_, chrono::DateTime<chrono::Utc>>(2)
                .timestamp_millis(),
            decision: r.get(3),
            reason: r.get(4),
            version: r.get(5),
            delivery: r.get(6),
        })
        .collect())
}

async fn outbox(db: &tokio_postgres::Client) -> Result<Vec<Row>, String> {
    let rows = db
        .query(
            "SELECT entity_id::text, system || ':' || external_id, status, state,
                    operation_id::text, entity_version
             FROM sync_outbox ORDER BY id",
            &[],
        )
        .await
        .map_err(|e| format!("reading the outbox: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| Row {
            entity: r.get(0),
            external: r.get(1),
            status: r.get(2),
            state: r.get(3),
            operation: r.get(4),
            version: r.get(5),
        })
        .collect())
}

/// The entity a unit's objects ended on (following merges) and its status.
async fn entity_status(
    db: &tokio_postgres::Client,
    entity: &str,
) -> Result<(String, CanonicalStatus, bool), String> {
    let mut id = entity.to_owned();
    for _ in 0..8 {
        let row = db
            .query_one(
                "SELECT status, manual, merged_into::text FROM entities WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .map_err(|e| format!("reading entity {id}: {e}"))?;
        let merged: Option<String> = row.get(2);
        if let Some(next) = merged {
            id = next;
            continue;
        }
        let status: String = row.get(0);
        let status = status
            .parse()
            .map_err(|e| format!("entity {id} status: {e:?}"))?;
        return Ok((id, status, row.get(1)));
    }
    Err(format!("entity {entity}: a merge chain without end"))
}

fn explained_divergence(d: &Decision) -> bool {
    d.decision == "stale"
        || d.decision == "rejected"
        || (d.decision == "noop" && d.reason.starts_with("terminal guard"))
        || (d.decision == "conflict" && !d.reason.contains("corrected back"))
}

/// What the run's decisions were, so that a run shows which rules it exercised.
fn tally(history: &[Decision]) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for d in history {
        let kind = match d.decision.as_str() {
            "noop" if d.reason.starts_with(ECHO) => "echo",
            "noop" if d.reason.starts_with("terminal guard") => "terminal guard",
            "conflict" if d.reason.contains("escalat") => "escalated",
            other => other,
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The failures found, and a tally of the decisions made.
pub async fn check(world: &Shared, db: &tokio_postgres::Client) -> (Vec<String>, String) {
    let mut failures = Vec::new();
    let (history, rows) = match (decisions(db).await, outbox(db).await) {
        (Ok(h), Ok(r)) => (h, r),
        (Err(e), _) | (_, Err(e)) => return (vec![e], String::new()),
    };
    let by_delivery: BTreeMap<&str, Vec<&Decision>> =
        history.iter().fold(BTreeMap::new(), |mut m, d| {
            if let Some(id) = d.delivery.as_deref() {
                m.entry(id).or_insert_with(Vec::new).push(d);
            }
            m
        });
    let failed: i64 = db
        .query_one(
            "SELECT count(*) FROM inbound_events WHERE state = 'failed'",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1);
    if failed != 0 {
        failures.push(format!("{failed} accepted deliveries failed"));
    }
    for r in rows.iter().filter(|r| r.state == "dead") {
        failures.push(format!(
            "outbox row for {} ({}) is a dead letter",
            r.external, r.status
        ));
    }

    let units = lock(world).units.clone();
    let mut entities = Vec::new();
    for u in &units {
        entities.push(match u.entity.as_deref() {
            Some(entity) => entity_status(db, entity).await.map(Some),
            None => Ok(None),
        });
    }
    let mut w = lock(world);
    // The history goes into the trace, for whoever reads a failure.
    for d in &history {
        w.trace.push(format!(
            "HISTORY {} v{} {} @{} [{}] {}",
            &d.entity[..8],
            d.version,
            d.decision,
            super::world::iso_ms(d.source_ms),
            d.delivery.as_deref().unwrap_or("-"),
            d.reason
        ));
    }
    for r in &rows {
        w.trace.push(format!(
            "OUTBOX {} v{} {} {} {} op {}",
            &r.entity[..8],
            r.version,
            r.external,
            r.status,
            r.state,
            &r.operation[..8]
        ));
    }
    let w = w;
    let mut tolerated = Vec::new();
    // Echoes: never a person's change; statsync's own never applied.
    for c in &w.changes {
        let Some(delivery) = c.delivery.as_deref() else {
            continue;
        };
        for d in by_delivery.get(delivery).into_iter().flatten() {
            match &c.actor {
                Actor::Person(p) if d.reason.starts_with(ECHO) => failures.push(format!(
                    "{p}'s change {} {} (delivery {delivery}) was decided an echo: {}",
                    c.object, c.what, d.reason
                )),
                Actor::Statsync if d.decision == "applied" || d.decision == "conflict" => failures
                    .push(format!(
                        "the webhook about statsync's own write {} {} (delivery {delivery}) was \
                         decided {}: {}",
                        c.object, c.what, d.decision, d.reason
                    )),
                _ => {}
            }
        }
    }

    // A call in flight when statsync was killed may be made again after the restart.
    let mut ok_calls: BTreeMap<String, usize> = BTreeMap::new();
    let mut killed_calls: BTreeMap<String, usize> = BTreeMap::new();
    for c in &w.calls {
        if let Some((object, _)) = &c.write {
            *ok_calls.entry(object.clone()).or_default() += 1;
            if c.incarnation < w.incarnation {
                *killed_calls.entry(object.clone()).or_default() += 1;
            }
        }
    }
    for (i, (u, found)) in w.units.iter().zip(entities).enumerate() {
        let (entity, status, manual) = match found {
            Ok(Some(e)) => e,
            Ok(None) => {
                failures.push(format!("{} has no entity", u.identifier));
                continue;
            }
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let name = &u.identifier;
        if manual {
            failures.push(format!(
                "{name}: entity {entity} is still in manual resolution"
            ));
        }
        let history_of: Vec<&Decision> = history.iter().filter(|d| d.entity == entity).collect();

        // Every system shows the status PostgreSQL holds.
        let objects = [
            format!("linear:{}", u.linear),
            format!("github:{REPO}#{}", u.issue),
            format!("github:{}", u.item),
        ];
        for object in &objects {
            let Some(native) = native_now(&w, object) else {
                failures.push(format!("{name}: {object} shows no status (PG: {status})"));
                continue;
            };
            if allows(&native, object, status) {
                continue;
            }
            let last = w.changes.iter().rev().find(|c| &c.object == object);
            let explained = match last {
                Some(
                    c @ Change {
                        actor: Actor::Person(_),
                        ..
                    },
                ) => {
                    // A board edit without its value is first recorded as waiting for
                    // its lookup; the read-back's decision is the one on the value.
                    let ds: Vec<&Decision> = c
                        .delivery
                        .as_deref()
                        .and_then(|d| by_delivery.get(d))
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|d| !d.reason.contains("needs a lookup first"))
                        .collect();
                    (!ds.is_empty() && ds.iter().all(|d| explained_divergence(d)))
                        || unknowable(&w, c).is_some()
                }
                _ => false,
            };
            let last = last
                .map(|c| format!("{:?} {} @{}", c.actor, c.what, c.source_ms))
                .unwrap_or_else(|| "none".into());
            if explained {
                tolerated.push(format!("{object} shows {native:?}, PG {status}: {last}"));
            } else {
                failures.push(format!(
                    "{name}: {object} shows {native:?} but PostgreSQL holds {status} (last change \
                     there: {last})"
                ));
            }
        }

        // The final status is the latest person's change by source time.
        let resolution = w
            .resolutions
            .iter()
            .rev()
            .find(|(e, _)| *e == entity || u.entity.as_deref() == Some(e.as_str()));
        if let Some((_, chosen)) = resolution {
            if chosen != status.as_str() {
                failures.push(format!(
                    "{name}: resolved as {chosen} by a person, but PostgreSQL holds {status}"
                ));
            }
        } else if let Some(latest) = latest_person_change(&w, i) {
            if !allows(&latest.native, &latest.object, status) {
                let own: Vec<&Decision> = latest
                    .delivery
                    .as_deref()
                    .and_then(|d| by_delivery.get(d))
                    .cloned()
                    .unwrap_or_default();
                let guard = !latest.explicit
                    && own
                        .iter()
                        .any(|d| d.decision == "noop" && d.reason.starts_with("terminal guard"));
                let conflict = history_of.iter().any(|d| {
                    d.decision == "conflict"
                        && (d.source_ms - latest.source_ms).abs() <= WINDOW_MS + 2 * w.max_skew_ms
                });
                let unknown = w
                    .changes
                    .iter()
                    .find(|c| c.delivery == latest.delivery)
                    .and_then(|c| unknowable(&w, c));
                if let Some(why) = unknown {
                    tolerated.push(format!("{name}: final status not judged: {why}"));
                } else if !guard && !conflict {
                    failures.push(format!(
                        "{name}: PostgreSQL holds {status}, but the latest person's change is {} \
                         {} @{} (decided: {})",
                        latest.object,
                        latest.what,
                        super::world::iso_ms(latest.source_ms),
                        own.iter()
                            .map(|d| format!("{} — {}", d.decision, d.reason))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ));
                }
            }
        }

        // Conflict windows are measured in source time: a conflict needs another
        // system's assertion of the current status within the window of its own time
        // (a change applied, or a noop that confirms it: compatible, or a second
        // delivery of that system's last source time, as GitHub's whole seconds make of
        // two quick edits).
        for d in history_of.iter().filter(|d| {
            d.decision == "conflict" && !d.reason.starts_with("the entity is escalated")
        }) {
            // A conflict won moved the entity on: the status it met was the previous one.
            let won = d.reason.contains("corrected") && !d.reason.contains("corrected back");
            let met = d.version - i64::from(won);
            let rival = history_of.iter().any(|r| {
                r.version == met
                    && r.system != d.system
                    && (r.decision == "applied"
                        || r.decision == "conflict"
                        || (r.decision == "noop"
                            && (r.reason.contains("compatible with")
                                || r.reason.starts_with("duplicate:"))))
                    && (r.source_ms - d.source_ms).abs() <= WINDOW_MS
            });
            if !rival {
                failures.push(format!(
                    "{name}: a conflict although no other system asserted the status within \
                     {WINDOW_MS} ms of its source time {}: {}",
                    super::world::iso_ms(d.source_ms),
                    d.reason
                ));
            }
        }

        // Writes: each successful call is one outbox row from one decision.
        let decided: BTreeSet<i64> = history_of
            .iter()
            .filter(|d| d.decision == "applied" || d.decision == "conflict")
            .map(|d| d.version)
            .collect();
        let mut per_operation: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.entity == entity) {
            *per_operation
                .entry((r.operation.as_str(), r.external.as_str()))
                .or_default() += 1;
            if !decided.contains(&r.version) {
                failures.push(format!(
                    "{name}: outbox row to {} ({}) at version {} is explained by no applied or \
                     conflict decision",
                    r.external, r.status, r.version
                ));
            }
        }
        for ((op, external), n) in per_operation {
            if n > 1 {
                failures.push(format!("{name}: operation {op} wrote {external} {n} times"));
            }
        }
        for object in &objects {
            let calls = ok_calls.get(object).copied().unwrap_or(0);
            let done = rows
                .iter()
                .filter(|r| &r.external == object && r.state == "done")
                .count();
            let retried = killed_calls.get(object).copied().unwrap_or(0);
            if calls > done + retried {
                failures.push(format!(
                    "{name}: {calls} successful writes to {object} but {done} outbox rows done"
                ));
            }
        }
    }

    // No loop: writes bounded by the people's changes times the linked objects.
    let people = w
        .changes
        .iter()
        .filter(|c| matches!(c.actor, Actor::Person(_)))
        .count()
        + w.resolutions.len();
    let writes: usize = ok_calls.values().sum();
    if writes > people * 3 {
        failures.push(format!(
            "{writes} writes by statsync for {people} changes by people across 3 linked objects \
             each: a loop"
        ));
    }
    let mut tally = tally(&history);
    if !tolerated.is_empty() {
        tally.push_str(&format!(
            "; {} tolerated (recorded stale, guarded or unknowable): {}",
            tolerated.len(),
            tolerated.join("; ")
        ));
    }
    (failures, tally)
}
