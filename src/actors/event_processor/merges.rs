//! Late linking: a GitHub pull request (or issue) seen before it named, or was attached
//! to, a Linear issue has an entity of its own; once an update links it to the issue,
//! that entity is absorbed into the issue's, which survives. The absorbed row is kept,
//! pointing at the survivor (`merged_into`), with its history; its links move. Both rows
//! are locked with the batch's others, in id order. Never absorbs an entity that a
//! Linear issue shares: a ref linked to another issue stays where it is.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use uuid::Uuid;

use super::effects::Effects;
use super::entity_state::EntityState;
use super::item::{ApplyError, Target, WorkItem};
use crate::domain::{ExternalRef, SystemId};
use crate::store::entities;

/// One entity to absorb into another, because of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Merge {
    pub absorbed: Uuid,
    pub survivor: Uuid,
    pub item: usize,
}

/// Merges the batch asks for, as far as the links found before locking tell: an item
/// whose refs reach exactly one entity through a Linear ref (the survivor) and another
/// one through a GitHub ref.
pub(super) fn plan(items: &[WorkItem], found: &HashMap<ExternalRef, Uuid>) -> Vec<Merge> {
    let mut merges: Vec<Merge> = Vec::new();
    for (idx, item) in items.iter().enumerate() {
        let Target::Ref(target) = &item.target else {
            continue;
        };
        let refs = || {
            std::iter::once(target)
                .chain(&item.update.aliases)
                .chain(&item.update.links)
        };
        let survivors: BTreeSet<Uuid> = refs()
            .filter(|r| r.system == SystemId::Linear)
            .filter_map(|r| found.get(r).copied())
            .collect();
        let [survivor] = survivors.into_iter().collect::<Vec<_>>()[..] else {
            continue;
        };
        for r in refs().filter(|r| r.system == SystemId::Github) {
            let Some(&absorbed) = found.get(r) else {
                continue;
            };
            let seen = merges
                .iter()
                .any(|m| m.absorbed == absorbed || m.survivor == absorbed);
            if absorbed != survivor && !seen {
                merges.push(Merge {
                    absorbed,
                    survivor,
                    item: idx,
                });
            }
        }
    }
    merges
}

/// Carries out the planned merges on the locked rows: moves the links, marks the
/// absorbed rows, records both sides' history and an `entities_merged` event, and
/// points `found` at the survivors. Answers absorbed → survivor for the merges made.
pub(super) async fn execute(
    tx: &Client,
    plan: &[Merge],
    items: &[WorkItem],
    states: &mut HashMap<Uuid, EntityState>,
    found: &mut HashMap<ExternalRef, Uuid>,
    effects: &mut Effects,
    now: DateTime<Utc>,
) -> Result<HashMap<Uuid, Uuid>, ApplyError> {
    let mut done = HashMap::new();
    if plan.is_empty() {
        return Ok(done);
    }
    // Read again under the locks: a concurrent transaction may have linked an issue to
    // the entity since it was planned.
    let ids: Vec<Uuid> = plan.iter().map(|m| m.absorbed).collect();
    let links = entities::links_of(tx, &ids).await?;
    for m in plan {
        let own = links
            .get(&m.absorbed)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if own.iter().any(|l| l.system == SystemId::Linear) {
            continue;
        }
        let (Some(absorbed), true) = (states.get(&m.absorbed), states.contains_key(&m.survivor))
        else {
            continue;
        };
        if absorbed.merged_into().is_some() {
            continue;
        }
        let moved = entities::merge(tx, m.absorbed, m.survivor).await?;
        for owner in found.values_mut().filter(|o| **o == m.absorbed) {
            *owner = m.survivor;
        }
        for r in &moved {
            found.insert(r.clone(), m.survivor);
        }
        let absorbed = states
            .remove(&m.absorbed)
            .ok_or_else(|| super::item::missing(m.absorbed))?;
        let survivor = states
            .get(&m.survivor)
            .ok_or_else(|| super::item::missing(m.survivor))?;
        effects.record_merge(survivor, &absorbed, &moved, &items[m.item], now);
        done.insert(m.absorbed, m.survivor);
    }
    Ok(done)
}
