//! Who made a change: statsync's own credentials, someone else, or unknown. Each system
//! names the actor of a delivery (GitHub `sender.login`, Linear `actor.id`); when it is
//! the identity statsync's token acts as, the delivery is statsync's own write coming
//! back, whatever status it carries. No I/O: the identities come from settings.

use crate::config::Settings;
use crate::domain::{StatusUpdate, SystemId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Made with statsync's own credentials (the identity, for the record).
    Statsync(String),
    /// Made by someone else: a genuine change, never taken for an echo.
    Other,
    /// The delivery names no actor, or statsync's identity there is not configured.
    Unknown,
}

/// The actor of `update` as far as its system and the settings tell.
pub fn actor_of(settings: &Settings, update: &StatusUpdate) -> Actor {
    let (key, own) = match update.source {
        SystemId::Github => ("sender", settings.github.actor_login.as_deref()),
        SystemId::Linear => ("actorId", settings.linear.actor_id.as_deref()),
        _ => return Actor::Unknown,
    };
    judge(own, update.metadata.get(key).and_then(|v| v.as_str()))
}

fn judge(own: Option<&str>, actor: Option<&str>) -> Actor {
    let (Some(own), Some(actor)) = (own, actor) else {
        return Actor::Unknown;
    };
    // GitHub logins are case-insensitive; Linear ids are UUIDs, compared the same way.
    if actor.eq_ignore_ascii_case(own) {
        Actor::Statsync(own.to_owned())
    } else {
        Actor::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsyncs_own_identity_is_recognised_in_any_case() {
        assert_eq!(
            judge(Some("statsync-bot"), Some("StatSync-Bot")),
            Actor::Statsync("statsync-bot".into())
        );
    }

    #[test]
    fn a_person_is_never_statsync() {
        assert_eq!(judge(Some("statsync-bot"), Some("octocat")), Actor::Other);
    }

    #[test]
    fn without_an_identity_or_an_actor_nothing_is_known() {
        assert_eq!(judge(None, Some("octocat")), Actor::Unknown);
        assert_eq!(judge(Some("statsync-bot"), None), Actor::Unknown);
    }
}
