//! Whether a delivery is the echo of statsync's own write: the webhook a system sends
//! about a change statsync made there. Recognised only by what statsync knows for
//! certain, never by status alone (a person moving an issue back to a status statsync
//! wrote earlier is a genuine change):
//! - the actor: statsync's own identity in that system made it, or someone else did;
//! - the write's own answer: the object's updated-at after the write, which the webhook
//!   about that write carries as its source time.
//!
//! A delivery whose source time is later than every write statsync made to the object
//! is never an echo (when its actor is unknown), and each write's echo is consumed once.

use chrono::{DateTime, SecondsFormat, Utc};

use super::CanonicalStatus;

/// Who made a change, as far as the delivery and statsync's identities tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Made with statsync's own credentials (the identity, for the record).
    Statsync(String),
    /// Made by someone else: a genuine change, never taken for an echo.
    Other,
    /// The delivery names no actor, or statsync's identity there is not known.
    Unknown,
}

impl Actor {
    /// `actor` judged against statsync's own identity `own` in the same system.
    pub fn judge(own: Option<&str>, actor: Option<&str>) -> Actor {
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
}

/// One write statsync made to an object, as recorded after the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastWrite {
    pub id: i64,
    pub status: CanonicalStatus,
    /// The object's updated-at in the write's answer (the system's clock), when the API
    /// gave it.
    pub object_updated_at: Option<DateTime<Utc>>,
    /// When statsync recorded the write (statsync's clock).
    pub written_at: DateTime<Utc>,
    /// Its echo has come already.
    pub echoed: bool,
}

/// What a delivery is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// statsync's own write coming back; `consumes` is the write it answers, if known.
    Echo { consumes: Option<i64>, why: String },
    /// A genuine change, decided as usual.
    Change,
}

/// Judges a delivery stamped `source_ts` whose native value is compatible with
/// `compatible`, about an object statsync wrote `writes` to.
pub fn judge(
    actor: &Actor,
    writes: &[PastWrite],
    source_ts: DateTime<Utc>,
    compatible: &[CanonicalStatus],
) -> Verdict {
    let exact = writes
        .iter()
        .find(|w| !w.echoed && w.object_updated_at == Some(source_ts));
    match actor {
        Actor::Other => Verdict::Change,
        Actor::Statsync(own) => Verdict::Echo {
            consumes: exact.map(|w| w.id),
            why: format!("made by {own}"),
        },
        Actor::Unknown => {
            if let Some(w) = exact {
                return Verdict::Echo {
                    consumes: Some(w.id),
                    why: format!(
                        "{} written, answered with updated-at {}",
                        w.status,
                        ts(source_ts)
                    ),
                };
            }
            // A write whose answer did not say the object's updated-at is matched by
            // status, and only by a delivery not later than the write's own record.
            let fallback = writes.iter().find(|w| {
                !w.echoed
                    && w.object_updated_at.is_none()
                    && compatible.contains(&w.status)
                    && source_ts <= w.written_at
            });
            match fallback {
                Some(w) => Verdict::Echo {
                    consumes: Some(w.id),
                    why: format!("{} written at {}", w.status, ts(w.written_at)),
                },
                None => Verdict::Change,
            }
        }
    }
}

/// A write made after the change stamped `source_ts` overwrote it in its own system:
/// the newest such write, if any. A write stamped the same instant counts too: GitHub
/// stamps whole seconds, so the two cannot be ordered, and writing the change back costs
/// at most a write of a value the object already shows.
pub fn overwritten_by(writes: &[PastWrite], source_ts: DateTime<Utc>) -> Option<&PastWrite> {
    writes
        .iter()
        .filter(|w| w.object_updated_at.is_some_and(|at| at >= source_ts))
        .max_by_key(|w| w.object_updated_at)
}

/// What statsync's writes leave an object showing after a change stamped `source_ts`
/// was made there, if not the change: the newest write still waiting or in flight
/// (`unfinished`) lands after every finished one, so it wins over a finished write that
/// overwrote the change.
pub fn shown_after(
    writes: &[PastWrite],
    unfinished: Option<CanonicalStatus>,
    source_ts: DateTime<Utc>,
) -> Option<CanonicalStatus> {
    unfinished.or_else(|| overwritten_by(writes, source_ts).map(|w| w.status))
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use CanonicalStatus::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn write(id: i64, status: CanonicalStatus, updated: Option<i64>) -> PastWrite {
        PastWrite {
            id,
            status,
            object_updated_at: updated.map(at),
            written_at: at(updated.unwrap_or(0)) + TimeDelta::milliseconds(300),
            echoed: false,
        }
    }

    #[test]
    fn statsyncs_own_identity_is_recognised_in_any_case() {
        assert_eq!(
            Actor::judge(Some("statsync-bot"), Some("StatSync-Bot")),
            Actor::Statsync("statsync-bot".into())
        );
        assert_eq!(
            Actor::judge(Some("statsync-bot"), Some("octocat")),
            Actor::Other
        );
        assert_eq!(Actor::judge(None, Some("octocat")), Actor::Unknown);
        assert_eq!(Actor::judge(Some("statsync-bot"), None), Actor::Unknown);
    }

    #[test]
    fn a_persons_change_is_never_an_echo_even_with_the_written_status_and_time() {
        let writes = [write(1, InProgress, Some(10))];
        assert_eq!(
            judge(&Actor::Other, &writes, at(10), &[InProgress]),
            Verdict::Change
        );
    }

    #[test]
    fn statsyncs_own_change_is_an_echo_whatever_it_carries_and_consumes_its_write() {
        let writes = [write(1, Done, Some(10))];
        let own = Actor::Statsync("bot".into());
        assert_eq!(
            judge(&own, &writes, at(10), &[Todo]),
            Verdict::Echo {
                consumes: Some(1),
                why: "made by bot".into()
            }
        );
        assert!(matches!(
            judge(&own, &writes, at(99), &[Todo]),
            Verdict::Echo { consumes: None, .. }
        ));
    }

    #[test]
    fn without_an_actor_only_the_writes_own_updated_at_makes_an_echo() {
        let writes = [write(1, InProgress, Some(10)), write(2, Done, Some(20))];
        let echo = judge(&Actor::Unknown, &writes, at(20), &[Done]);
        assert!(matches!(
            echo,
            Verdict::Echo {
                consumes: Some(2),
                ..
            }
        ));
        // The reopen a person made after both writes carries an older write's status:
        // later than every write, so a change.
        assert_eq!(
            judge(&Actor::Unknown, &writes, at(40), &[InProgress]),
            Verdict::Change
        );
    }

    #[test]
    fn each_writes_echo_is_consumed_once() {
        let mut w = write(1, Done, Some(10));
        w.echoed = true;
        assert_eq!(
            judge(&Actor::Unknown, &[w], at(10), &[Done]),
            Verdict::Change
        );
    }

    #[test]
    fn a_write_without_updated_at_matches_by_status_only_up_to_its_record() {
        let writes = [write(1, Done, None)];
        assert!(matches!(
            judge(&Actor::Unknown, &writes, at(0), &[Done]),
            Verdict::Echo {
                consumes: Some(1),
                ..
            }
        ));
        assert_eq!(
            judge(&Actor::Unknown, &writes, at(0), &[Todo]),
            Verdict::Change
        );
        assert_eq!(
            judge(&Actor::Unknown, &writes, at(5), &[Done]),
            Verdict::Change,
            "later than the write"
        );
    }

    #[test]
    fn a_change_older_than_a_write_was_overwritten_by_it() {
        let writes = [write(1, Done, Some(10)), write(2, Todo, Some(30))];
        assert_eq!(overwritten_by(&writes, at(20)).map(|w| w.id), Some(2));
        assert_eq!(overwritten_by(&writes, at(30)).map(|w| w.id), Some(2));
        assert_eq!(overwritten_by(&writes, at(31)), None);
    }

    #[test]
    fn a_write_still_to_land_decides_what_the_object_shows_over_one_that_landed() {
        // The simulation's seed 40: a close written back the same second as a person's
        // close, and a reopen still waiting; the reopen is what the issue will show.
        let writes = [write(1, Done, Some(30))];
        assert_eq!(
            shown_after(&writes, Some(InProgress), at(30)),
            Some(InProgress)
        );
        assert_eq!(shown_after(&writes, None, at(30)), Some(Done));
        assert_eq!(shown_after(&writes, None, at(31)), None);
        assert_eq!(shown_after(&[], Some(Todo), at(31)), Some(Todo));
    }
}
