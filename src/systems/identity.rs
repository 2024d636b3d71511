//! Who statsync is in each system: the identity its own credentials act as (GitHub
//! `GET /user` login, Linear `viewer { id }`). A delivery made by that identity is
//! statsync's own write coming back, whatever status it carries; one made by anyone
//! else never is. Identities come from the settings (`github.actor_login`,
//! `linear.actor_id`) or are discovered at start from the credentials; a discovery that
//! fails is logged, counted and retried, never fatal (echoes are then recognised by
//! the writes' own answers alone).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::domain::echo::Actor;
use crate::domain::{StatusUpdate, SystemId};
use crate::systems::github::client::GithubClient;
use crate::systems::linear::client::LinearClient;
use crate::systems::outbound::OutboundError;

/// How long a failed discovery waits before it is tried again.
const RETRY: Duration = Duration::from_secs(60);
/// How long the start waits for the first answer.
const FIRST_ASK: Duration = Duration::from_secs(5);

/// statsync's identity per system, shared by the engine's workers.
#[derive(Debug, Default)]
pub struct Identities {
    github: RwLock<Option<String>>,
    linear: RwLock<Option<String>>,
}

impl Identities {
    pub fn new(github: Option<String>, linear: Option<String>) -> Self {
        Identities {
            github: RwLock::new(github),
            linear: RwLock::new(linear),
        }
    }

    fn slot(&self, system: SystemId) -> Option<&RwLock<Option<String>>> {
        match system {
            SystemId::Github => Some(&self.github),
            SystemId::Linear => Some(&self.linear),
            _ => None,
        }
    }

    pub fn get(&self, system: SystemId) -> Option<String> {
        let slot = self.slot(system)?;
        // A poisoned lock only means a writer panicked mid-assignment of a String.
        slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, system: SystemId, identity: String) {
        if let Some(slot) = self.slot(system) {
            *slot.write().unwrap_or_else(|p| p.into_inner()) = Some(identity);
        }
    }

    /// The actor of `update`: GitHub names it in `sender`, Linear in `actor.id`.
    pub fn actor_of(&self, update: &StatusUpdate) -> Actor {
        let key = match update.source {
            SystemId::Github => "sender",
            SystemId::Linear => "actorId",
            _ => return Actor::Unknown,
        };
        let actor = update.metadata.get(key).and_then(|v| v.as_str());
        Actor::judge(self.get(update.source).as_deref(), actor)
    }
}

/// A system statsync can ask who it is.
enum Asker {
    Github(Arc<GithubClient>),
    Linear(Arc<LinearClient>),
}

impl Asker {
    fn system(&self) -> SystemId {
        match self {
            Asker::Github(_) => SystemId::Github,
            Asker::Linear(_) => SystemId::Linear,
        }
    }

    async fn ask(&self) -> Result<String, OutboundError> {
        match self {
            Asker::Github(c) => c.whoami().await,
            Asker::Linear(c) => c.viewer_id().await,
        }
    }
}

/// Asks each system with credentials and no configured identity who statsync is. The
/// first answers are awaited (so deliveries are judged with them from the start); a
/// system that does not answer is asked again every minute in the background.
pub async fn discover(
    identities: Arc<Identities>,
    github: Option<Arc<GithubClient>>,
    linear: Option<Arc<LinearClient>>,
    failures: prometheus::IntCounterVec,
) {
    let askers: Vec<Asker> = [github.map(Asker::Github), linear.map(Asker::Linear)]
        .into_iter()
        .flatten()
        .filter(|a| identities.get(a.system()).is_none())
        .collect();
    let answers = futures_util::future::join_all(askers.iter().map(|a| bounded(a.ask()))).await;
    for (asker, answer) in askers.into_iter().zip(answers) {
        if learn(asker.system(), &identities, &failures, answer) {
            continue;
        }
        let (identities, failures) = (identities.clone(), failures.clone());
        actix_web::rt::spawn(async move {
            loop {
                actix::clock::sleep(RETRY).await;
                if learn(asker.system(), &identities, &failures, asker.ask().await) {
                    return;
                }
            }
        });
    }
}

/// The first ask holds up the start: bounded well below a readiness probe's patience.
async fn bounded(
    ask: impl std::future::Future<Output = Result<String, OutboundError>>,
) -> Result<String, OutboundError> {
    actix::clock::timeout(FIRST_ASK, ask)
        .await
        .unwrap_or_else(|_| {
            Err(OutboundError::new(
                crate::systems::outbound::ErrorCode::Timeout,
                format!("no answer within {} s", FIRST_ASK.as_secs()),
            ))
        })
}

/// Takes one answer; whether the identity is now known.
fn learn(
    system: SystemId,
    identities: &Identities,
    failures: &prometheus::IntCounterVec,
    answer: Result<String, OutboundError>,
) -> bool {
    match answer {
        Ok(identity) => {
            tracing::info!(
                system = system.as_str(),
                identity = %identity,
                "statsync's own identity discovered: its deliveries are echoes"
            );
            identities.set(system, identity);
            true
        }
        Err(e) => {
            failures
                .with_label_values(&[system.as_str(), e.code.as_str()])
                .inc();
            tracing::warn!(
                system = system.as_str(),
                code = e.code.as_str(),
                error = %e.message,
                retry_in_s = RETRY.as_secs(),
                "could not discover statsync's own identity; until it is known, echoes are \
                 recognised by the writes' answers alone"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(source: SystemId, metadata: serde_json::Value) -> StatusUpdate {
        StatusUpdate {
            source,
            target: crate::domain::ExternalRef::new(source, "x"),
            aliases: Vec::new(),
            links: Vec::new(),
            kind: crate::domain::EntityKind::Issue,
            action: crate::domain::UpdateAction::Linked,
            source_timestamp: chrono::Utc::now(),
            project: None,
            explicit: false,
            title: None,
            body: None,
            metadata,
        }
    }

    #[test]
    fn a_discovered_identity_makes_its_deliveries_statsyncs() {
        let ids = Identities::default();
        let own = update(SystemId::Linear, json!({"actorId": "viewer-1"}));
        assert_eq!(ids.actor_of(&own), Actor::Unknown);
        ids.set(SystemId::Linear, "viewer-1".into());
        assert_eq!(ids.actor_of(&own), Actor::Statsync("viewer-1".into()));
        let person = update(SystemId::Linear, json!({"actorId": "user-2"}));
        assert_eq!(ids.actor_of(&person), Actor::Other);
    }
}
