//! Finding, creating and linking the entity an update is about. Never links an object
//! that belongs to another entity; a concurrent creator of the same object wins and
//! this transaction uses its entity.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Client;
use uuid::Uuid;

use super::entity_state::EntityState;
use super::item::{describe_target, missing, ApplyError, Target, WorkItem};
use crate::domain::{CanonicalStatus, ExternalRef, StatusUpdate};
use crate::store::entities;

/// Creates the entity for an unlinked object and links it; when a concurrent
/// transaction linked the object first, uses (and locks) that entity instead.
pub(super) async fn create_entity(
    tx: &Client,
    item: &WorkItem,
    initial: CanonicalStatus,
    states: &mut HashMap<Uuid, EntityState>,
    found: &mut HashMap<ExternalRef, Uuid>,
) -> Result<Uuid, ApplyError> {
    let Target::Ref(target) = &item.target else {
        return Err(ApplyError::NotFound(describe_target(item)));
    };
    let update = &item.update;
    let id = Uuid::new_v4();
    entities::insert(
        tx,
        &entities::NewEntity {
            id,
            kind: update.kind,
            status: initial,
            project: update.project.as_deref(),
            title: update.title.as_deref(),
            metadata: &update.metadata,
        },
    )
    .await?;
    let alias = alias_for(update, target);
    let owner = entities::link(tx, id, target, alias.as_deref(), role_of(target)).await?;
    if owner != id {
        entities::delete(tx, id).await?;
        let mut rows = entities::lock(tx, &[owner]).await?;
        let row = rows.remove(&owner).ok_or_else(|| missing(owner))?;
        let mut state = EntityState::loaded(row);
        let sources = entities::sources(tx, &[owner])
            .await?
            .remove(&owner)
            .unwrap_or_default();
        let links = entities::links_of(tx, &[owner])
            .await?
            .remove(&owner)
            .unwrap_or_default();
        state.set_context(sources, links, Vec::new());
        states.insert(owner, state);
        found.insert(target.clone(), owner);
        return Ok(owner);
    }
    let state = EntityState::created(id, update, initial);
    states.insert(id, state);
    found.insert(target.clone(), id);
    Ok(id)
}

/// Links the update's object, its aliases and the objects it names (`issue` of an agent
/// task) to the entity, unless they belong to another one.
pub(super) async fn ensure_links(
    tx: &Client,
    item: &WorkItem,
    id: Uuid,
    states: &mut HashMap<Uuid, EntityState>,
    found: &mut HashMap<ExternalRef, Uuid>,
) -> Result<(), ApplyError> {
    let Target::Ref(target) = &item.target else {
        return Ok(());
    };
    let update = &item.update;
    // An object linked before its alias was known (a Linear issue linked through the API
    // by its UUID) learns it now, so that texts naming `ENG-123` find this entity.
    if let (Some(alias), Some(&owner)) = (alias_for(update, target), found.get(target)) {
        let unnamed = states.get_mut(&owner).and_then(|s| {
            s.links
                .iter_mut()
                .find(|l| l.external_ref() == *target && l.alias.is_none())
        });
        if let (true, Some(link)) = (owner == id, unnamed) {
            entities::link(tx, id, target, Some(&alias), role_of(target)).await?;
            link.alias = Some(alias);
        }
    }
    let mut wanted: Vec<(ExternalRef, Option<String>)> = Vec::new();
    if found.get(target) != Some(&id) {
        wanted.push((target.clone(), alias_for(update, target)));
    }
    for r in &update.links {
        if !found.contains_key(r) {
            wanted.push((r.clone(), None));
        }
    }
    let known: BTreeSet<ExternalRef> = states
        .get(&id)
        .map(|s| s.links.iter().map(|l| l.external_ref()).collect())
        .unwrap_or_default();
    for (r, alias) in wanted {
        if known.contains(&r) {
            found.insert(r, id);
            continue;
        }
        // A Linear issue first linked by its identifier (`ENG-123`, from an agent
        // report) is renamed to its UUID once a delivery tells both.
        if let Some(a) = &alias {
            let by_identifier = ExternalRef::new(r.system, a.clone());
            if found.get(&by_identifier) == Some(&id) {
                entities::relink(tx, &by_identifier, &r.external_id).await?;
            }
        }
        let owner = entities::link(tx, id, &r, alias.as_deref(), role_of(&r)).await?;
        found.insert(r.clone(), owner);
        if owner == id {
            if let Some(state) = states.get_mut(&id) {
                state
                    .links
                    .retain(|l| Some(&l.external_id) != alias.as_ref() || l.system != r.system);
                state.links.push(entities::Link {
                    system: r.system,
                    external_id: r.external_id.clone(),
                    alias: alias.clone(),
                    role: role_of(&r).to_owned(),
                    drives: false,
                });
            }
        }
    }
    Ok(())
}

/// The alias kept next to a link: a Linear issue's identifier.
fn alias_for(update: &StatusUpdate, target: &ExternalRef) -> Option<String> {
    update
        .aliases
        .iter()
        .find(|a| a.system == target.system && a.external_id != target.external_id)
        .map(|a| a.external_id.clone())
}

fn role_of(r: &ExternalRef) -> &'static str {
    if r.system == crate::domain::SystemId::Github && r.external_id.starts_with("PVTI_") {
        "project_item"
    } else {
        "primary"
    }
}
