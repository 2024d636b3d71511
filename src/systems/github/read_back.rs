//! Updates statsync reads back from GitHub rather than receives. A
//! `projects_v2_item.edited` delivery that names only the field gets its value from a
//! lookup (`Connector::read_back`: `client::item_status`, made by the dispatcher outside
//! any transaction); the
//! value is stored as a new inbound update of type [`ITEM_STATUS_READ`]: the original
//! delivery's body with the option read filled in as `changes.field_value.to`, as newer
//! GitHub deliveries carry it. It keeps the original's source timestamp
//! (`projects_v2_item.updated_at`), so it never overrides a newer change, and its
//! sender, so echoes and explicitness are judged as for the original. No I/O here.

use serde_json::{json, Value};

use super::client::ItemStatus;
use crate::systems::connector::{ReadBackRequest, ReadValue};
use crate::systems::{parse_object, required, Parsed, PayloadError};

/// The `event_type` of a stored update carrying a value read back by a lookup.
pub const ITEM_STATUS_READ: &str = "projects_v2_item.status_read";

/// Where the stored body says which lookup made it.
const MARK: &str = "statsync_lookup";

/// The update lookup `lookup_id` feeds back: `delivery` (a `projects_v2_item.edited`
/// body that named only the field, stored as `delivery_id`) with `status` filled in.
pub fn body(
    delivery: &[u8],
    delivery_id: &str,
    lookup_id: i64,
    status: &ItemStatus,
) -> Result<Vec<u8>, PayloadError> {
    let mut root = parse_object(delivery)?;
    let field = root
        .get_mut("changes")
        .and_then(|c| c.get_mut("field_value"))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| PayloadError::Missing("changes.field_value".into()))?;
    field.insert(
        "to".into(),
        json!({"id": status.option_id, "name": status.name}),
    );
    if let Some(map) = root.as_object_mut() {
        map.insert(
            MARK.into(),
            json!({"lookupId": lookup_id, "delivery": delivery_id}),
        );
    }
    serde_json::to_vec(&root).map_err(|e| PayloadError::Json(e.to_string()))
}

/// Parses a stored read-back: the original delivery's update, now with its value, and
/// marked in its metadata (`lookup`) so its history says where the value came from.
pub fn parse(root: &Value) -> Result<Parsed, PayloadError> {
    let lookup_id: i64 = required(root, &format!("{MARK}.lookupId"))?;
    let delivery: String = required(root, &format!("{MARK}.delivery"))?;
    // A read-back always carries the value; without it the lookup would be asked again.
    let _: String = required(root, "changes.field_value.to.name")?;
    let mut parsed = super::project_item::parse(root)?;
    if let Parsed::Updates(updates) = &mut parsed {
        let how = format!("read back from GitHub by lookup {lookup_id} after delivery {delivery}");
        for update in updates {
            if let Some(map) = update.metadata.as_object_mut() {
                map.insert("lookup".into(), json!(how));
            }
        }
    }
    Ok(parsed)
}

/// What reading `request.object` came to: the delivery completed with the item's
/// Status, or why there is nothing to store.
pub fn value(request: &ReadBackRequest<'_>, status: Option<ItemStatus>) -> ReadValue {
    let item = request.object;
    let Some(status) = status else {
        return ReadValue::Nothing(format!("{item} shows no Status value: nothing to apply"));
    };
    match body(
        request.delivery,
        request.delivery_id,
        request.lookup,
        &status,
    ) {
        Ok(body) => ReadValue::Delivery {
            body,
            event_type: ITEM_STATUS_READ,
            outcome: format!("{item} shows `{}`", status.name),
        },
        Err(e) => ReadValue::Unusable(format!(
            "delivery {} cannot carry the value read: {e}",
            request.delivery_id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NativeStatus, Origin, UpdateAction};
    use crate::systems::github::webhook;
    use crate::systems::test_support::{at, one};

    const FIXTURE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/github/projects_v2_item.edited.json"
    ));

    fn in_review() -> ItemStatus {
        ItemStatus {
            name: "In Review".into(),
            option_id: "opt-in-review".into(),
        }
    }

    #[test]
    fn a_read_back_is_the_original_update_with_its_value_and_timestamp() {
        let original = one(webhook::parse("projects_v2_item", FIXTURE));
        let stored = body(FIXTURE, "gh-1", 7, &in_review()).unwrap();
        let read = one(webhook::parse_stored(
            Origin::Lookup,
            ITEM_STATUS_READ,
            &stored,
        ));
        let UpdateAction::Status {
            native: NativeStatus::GithubProjectItem { option_name, .. },
        } = &read.action
        else {
            panic!("{read:?}");
        };
        assert_eq!(option_name.as_deref(), Some("In Review"));
        assert_eq!(read.source_timestamp, at("2022-06-08T20:34:26Z"));
        assert_eq!(read.source_timestamp, original.source_timestamp);
        assert_eq!(
            (&read.target, read.explicit, read.kind),
            (&original.target, original.explicit, original.kind)
        );
        assert_eq!(
            read.metadata["lookup"],
            "read back from GitHub by lookup 7 after delivery gh-1"
        );
        assert_eq!(read.metadata["sender"], original.metadata["sender"]);
    }

    #[test]
    fn a_read_back_without_its_value_or_mark_is_refused() {
        let original = webhook::parse_stored(Origin::Lookup, ITEM_STATUS_READ, FIXTURE);
        assert_eq!(
            original,
            Err(PayloadError::Missing("statsync_lookup.lookupId".into()))
        );
        let mut v: Value =
            serde_json::from_slice(&body(FIXTURE, "d", 1, &in_review()).unwrap()).unwrap();
        v["changes"]["field_value"]["to"]["name"] = Value::Null;
        let err = webhook::parse_stored(
            Origin::Lookup,
            ITEM_STATUS_READ,
            &serde_json::to_vec(&v).unwrap(),
        );
        assert_eq!(
            err,
            Err(PayloadError::Missing("changes.field_value.to.name".into()))
        );
        assert!(body(br#"{"action":"edited"}"#, "d", 1, &in_review()).is_err());
    }
}
