//! `[<system>.states]` and `[<system>.outbound]`: the vocabulary of a system without a
//! built-in one (any registered after GitHub, Linear and the agent API), status names
//! both ways, checked like Linear's names: every outbound name must map back inbound
//! to a set containing the status it is written for.

use std::collections::BTreeMap;

use super::file::RawNamed;
use super::{invalid, names, per_status, round_trip, Result};
use crate::domain::mapping::{MappingTable, NamedRules, OutboundNative};
use crate::domain::{CanonicalStatus, SystemId};

/// Whether `name` may have a named vocabulary: a system statsync knows, other than the
/// canonical store (the built-in three are read as their own sections).
pub(super) fn known_system(name: &str) -> bool {
    name.parse::<SystemId>()
        .is_ok_and(|system| system != SystemId::Postgresql)
}

pub(super) fn load(
    raw: &BTreeMap<String, RawNamed>,
    known: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, NamedRules>> {
    let mut out = BTreeMap::new();
    for (system, raw) in raw {
        if !known(system) {
            let systems: Vec<&str> = SystemId::ALL
                .iter()
                .filter(|s| **s != SystemId::Postgresql)
                .map(|s| s.as_str())
                .collect();
            return Err(invalid(
                system,
                system,
                &format!(
                    "not a system statsync has a connector for; sections are named for one \
                     of: {}",
                    systems.join(", ")
                ),
            ));
        }
        let rules = NamedRules {
            states: names(&format!("{system}.states"), &raw.states)?,
            outbound: per_status(
                &format!("{system}.outbound"),
                &raw.outbound,
                None,
                |_, name: &String| Ok(name.clone()),
            )?,
        };
        out.insert(system.clone(), rules);
    }
    Ok(out)
}

/// Every outbound name must come back as its own status, or each write would return
/// as a change.
pub(super) fn check_round_trips(table: &MappingTable) -> Result<()> {
    for (system, rules) in &table.named {
        for &status in CanonicalStatus::ALL {
            let name = rules.outbound.get(status);
            let path = format!("{system}.outbound.{status}");
            let Some(back) = table.named_state(system, name) else {
                return Err(invalid(
                    &path,
                    name,
                    &format!("{status} is written as this, which [{system}.states] does not map"),
                ));
            };
            let written = OutboundNative::Named { name: name.clone() };
            round_trip(&path, status, &written, Ok(back))?;
        }
    }
    Ok(())
}
