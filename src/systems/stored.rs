//! The door's reading of a delivery, stored beside its body (`inbound_events.parsed`):
//! the engine applies the updates the door read instead of parsing the body a second
//! time, and the claim need not fetch and decompress the body at all.

use crate::domain::StatusUpdate;

/// The format's name and version, first in every stored reading. A reading in any other
/// format (one a later statsync wrote, say) is not guessed at: the body is read instead.
const FORMAT: &[u8] = b"statsync.updates.v1\n";

/// `updates` in the stored format; `None` if they cannot be serialized (then the body is
/// stored alone and parsed in the engine, as before the format existed).
pub fn encode(updates: &[StatusUpdate]) -> Option<Vec<u8>> {
    let mut stored = FORMAT.to_vec();
    serde_json::to_writer(&mut stored, updates).ok()?;
    Some(stored)
}

/// The updates of a stored reading; `None` if it is not in this statsync's format or does
/// not read back (the caller parses the body instead).
pub fn decode(stored: &[u8]) -> Option<Vec<StatusUpdate>> {
    serde_json::from_slice(stored.strip_prefix(FORMAT)?).ok()
}

/// `updates` through the stored format and back, as the engine gets what the door stored.
#[cfg(test)]
pub(crate) fn round_trip(updates: &[StatusUpdate]) -> Option<Vec<StatusUpdate>> {
    decode(&encode(updates)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EntityKind, ExternalRef, NativeStatus, SystemId, UpdateAction};

    #[test]
    fn another_format_or_a_damaged_reading_is_not_read() {
        assert_eq!(decode(b"statsync.updates.v2\n[]"), None);
        assert_eq!(decode(b"statsync.updates.v1\n[{\"source\":"), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&encode(&[]).unwrap()), Some(vec![]));
    }

    #[test]
    fn an_update_without_a_source_time_reads_back_as_one() {
        // An A2A status without its optional timestamp carries the UNTIMED sentinel,
        // the earliest time chrono has: it must survive the round trip as it is.
        let update = StatusUpdate {
            source: SystemId::A2a,
            target: ExternalRef::new(SystemId::A2a, "task-1"),
            aliases: Vec::new(),
            links: vec![ExternalRef::new(SystemId::Linear, "ENG-1")],
            kind: EntityKind::Task,
            action: UpdateAction::Status {
                native: NativeStatus::Named {
                    system: SystemId::A2a,
                    name: "working".into(),
                },
            },
            source_timestamp: StatusUpdate::UNTIMED,
            project: None,
            explicit: false,
            title: Some("Fix the \u{0}-free \"title\"".into()),
            body: None,
            metadata: serde_json::json!({"n": 0.1, "big": u64::MAX}),
        };
        assert_eq!(
            round_trip(std::slice::from_ref(&update)),
            Some(vec![update])
        );
    }
}
