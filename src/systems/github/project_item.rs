//! `projects_v2_item` deliveries: a Projects v2 item's Status set on a board. Read from
//! a webhook (`webhook::parse`) and from a stored read-back (`read_back::parse`) alike.

use serde_json::Value;

use crate::domain::{EntityKind, ExternalRef, NativeStatus, StatusUpdate, SystemId, UpdateAction};
use crate::systems::{metadata, optional, required, timestamp, Parsed, PayloadError};

/// A Projects v2 item's single-select field changed: the item (linked as a second ref)
/// has a new Status, or another single-select field; the mapper tells them apart by
/// `field_node_id`.
pub fn parse(root: &Value) -> Result<Parsed, PayloadError> {
    let action: String = required(root, "action")?;
    if action != "edited" {
        return Ok(ignored(format!(
            "projects_v2_item action `{action}` is not a status change"
        )));
    }
    // An edit of a draft issue's body has `changes.body` and no field value.
    let Some(field_type) = optional::<String>(root, "changes.field_value.field_type")? else {
        return Ok(ignored("projects_v2_item edit changed no field value"));
    };
    if field_type != "single_select" {
        return Ok(ignored(format!(
            "projects_v2_item `{field_type}` field changes are not status changes"
        )));
    }
    let item_id: String = required(root, "projects_v2_item.node_id")?;
    let native = NativeStatus::GithubProjectItem {
        project_node_id: required(root, "projects_v2_item.project_node_id")?,
        field_node_id: required(root, "changes.field_value.field_node_id")?,
        // Newer deliveries carry the new option; older ones only name the field.
        option_name: optional(root, "changes.field_value.to.name")?,
    };
    let content_type: Option<String> = optional(root, "projects_v2_item.content_type")?;
    let kind = match content_type.as_deref() {
        Some("PullRequest") => EntityKind::PullRequest,
        _ => EntityKind::Issue,
    };
    let sender: Option<String> = optional(root, "sender.login")?;
    let sender_type: Option<String> = optional(root, "sender.type")?;
    let content_node_id: Option<String> = optional(root, "projects_v2_item.content_node_id")?;
    Ok(Parsed::Updates(vec![StatusUpdate {
        source: SystemId::Github,
        target: ExternalRef::new(SystemId::Github, item_id),
        aliases: Vec::new(),
        links: Vec::new(),
        kind,
        action: UpdateAction::Status { native },
        source_timestamp: timestamp(root, "projects_v2_item.updated_at")?,
        // An organization project spans repositories: no `owner/repo` room.
        project: None,
        // A person setting a board's Status is a deliberate change (a bot's is not).
        explicit: sender_type.as_deref() == Some("User"),
        title: None,
        body: None,
        metadata: metadata([
            ("sender", sender.map(Value::from)),
            ("contentNodeId", content_node_id.map(Value::from)),
        ]),
    }]))
}

fn ignored(reason: impl Into<String>) -> Parsed {
    Parsed::Ignored {
        reason: reason.into(),
    }
}
