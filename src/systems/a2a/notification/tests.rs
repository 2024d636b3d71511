use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::systems::test_support::{arb_json, at, edited, invalid_field, one, set};

const TASK: &str = "43667960-d455-4453-b0cf-1bae4955270d";

fn reading() -> Reading {
    Reading {
        default_agent: Some("coder".into()),
        teams: vec!["ENG".into()],
    }
}

/// A 1.0 status-update notification, as §6.6 of the specification shows one.
fn status_update() -> Value {
    json!({"statusUpdate": {
        "taskId": TASK,
        "contextId": "c295ea44-7543-4f78-b524-7a38915ad6e4",
        "status": {
            "state": "TASK_STATE_WORKING",
            "timestamp": "2024-03-15T18:30:00Z",
            "message": {"messageId": "m-1", "role": "ROLE_AGENT",
                        "parts": [{"text": "Reproduced the bug"}]}
        },
        "metadata": {"statsync.ref": "ENG-123"}
    }})
}

/// The same as a 0.3 SDK sends it: the event itself, `kind`, kebab-case states.
fn legacy_status_update() -> Value {
    json!({
        "kind": "status-update",
        "taskId": TASK,
        "contextId": "c295ea44-7543-4f78-b524-7a38915ad6e4",
        "status": {"state": "input-required", "timestamp": "2024-03-15T18:30:00.000Z"},
        "final": false
    })
}

fn parse_value(v: Value) -> Result<Parsed, PayloadError> {
    parse(&serde_json::to_vec(&v).unwrap(), &reading())
}

fn named(state: &str) -> UpdateAction {
    UpdateAction::Status {
        native: NativeStatus::Named {
            system: SystemId::A2a,
            name: state.into(),
        },
    }
}

#[test]
fn a_status_update_is_a_task_status_linked_to_the_issue_its_metadata_names() {
    let want = StatusUpdate {
        source: SystemId::A2a,
        target: ExternalRef::new(SystemId::A2a, TASK),
        aliases: vec![],
        links: vec![ExternalRef::new(SystemId::Linear, "ENG-123")],
        kind: EntityKind::Task,
        action: named("working"),
        source_timestamp: at("2024-03-15T18:30:00Z"),
        project: Some("ENG".into()),
        explicit: false,
        title: None,
        body: None,
        metadata: json!({
            "contextId": "c295ea44-7543-4f78-b524-7a38915ad6e4",
            "summary": "Reproduced the bug"
        }),
    };
    assert_eq!(one(parse_value(status_update())), want);
}

#[test]
fn the_legacy_form_and_kebab_case_states_are_read_too() {
    let got = one(parse_value(legacy_status_update()));
    assert_eq!(got.target, ExternalRef::new(SystemId::A2a, TASK));
    assert_eq!(got.action, named("input-required"));
    assert_eq!(got.links, vec![]);
    // Without `kind`, the fields tell.
    let mut bare = legacy_status_update();
    bare.as_object_mut().unwrap().remove("kind");
    assert_eq!(one(parse_value(bare)).action, named("input-required"));
}

#[test]
fn every_state_parses_in_both_spellings() {
    for (name, proto) in STATES {
        for spelled in [name, proto] {
            let body = edited(
                status_update(),
                &[set("statusUpdate.status.state", json!(spelled))],
            );
            assert_eq!(
                one(parse(&body, &reading())).action,
                named(name),
                "{spelled}"
            );
        }
    }
}

#[test]
fn a_task_object_links_through_its_history() {
    let task = |kind: Option<&str>| {
        let mut t = json!({
            "id": TASK,
            "contextId": "ctx-1",
            "status": {"state": "TASK_STATE_COMPLETED", "timestamp": "2024-03-15T19:00:00Z"},
            "history": [{"messageId": "m-0", "role": "ROLE_USER",
                         "parts": [{"text": "Please fix the login bug"}],
                         "metadata": {"statsync": {"ref": "acme/api#12"}}}]
        });
        if let Some(k) = kind {
            t["kind"] = json!(k);
        }
        t
    };
    for body in [json!({"task": task(None)}), task(Some("task"))] {
        let got = one(parse_value(body));
        assert_eq!(got.action, named("completed"));
        assert_eq!(
            got.links,
            vec![ExternalRef::new(SystemId::Github, "acme/api#12")]
        );
        assert_eq!(got.project.as_deref(), Some("acme/api"));
    }
}

#[test]
fn a_linear_identifier_of_a_known_team_in_the_text_links_the_task() {
    let text = |t: &str| {
        edited(
            status_update(),
            &[
                ("statusUpdate.metadata", None),
                set(
                    "statusUpdate.status.message.parts",
                    json!([{"kind": "text", "text": t}]),
                ),
            ],
        )
    };
    let got = one(parse(
        &text("Working on ENG-42 now (UTF-8 safe)"),
        &reading(),
    ));
    assert_eq!(
        got.links,
        vec![ExternalRef::new(SystemId::Linear, "ENG-42")]
    );
    let got = one(parse(&text("Fixing UTF-8 handling"), &reading()));
    assert_eq!(got.links, vec![]);
    // Without teams, text is not read.
    let none = Reading {
        teams: vec![],
        ..reading()
    };
    assert_eq!(one(parse(&text("ENG-42"), &none)).links, vec![]);
}

#[test]
fn a_task_of_another_agent_than_the_default_is_named_by_both() {
    let with_agent = |agent: &str| {
        edited(
            status_update(),
            &[set(
                "statusUpdate.metadata",
                json!({"statsync.agent": agent}),
            )],
        )
    };
    let got = one(parse(&with_agent("reviewer"), &reading()));
    assert_eq!(got.target.external_id, format!("reviewer/{TASK}"));
    assert_eq!(got.metadata["agent"], "reviewer");
    let got = one(parse(&with_agent("coder"), &reading()));
    assert_eq!(got.target.external_id, TASK);
    let err = parse(&with_agent("a b"), &reading()).unwrap_err();
    assert_eq!(invalid_field(err), "statusUpdate.metadata.statsync.agent");
}

#[test]
fn a_status_without_a_timestamp_takes_the_time_it_is_received() {
    let body = edited(status_update(), &[("statusUpdate.status.timestamp", None)]);
    assert_eq!(
        one(parse(&body, &reading())).source_timestamp,
        StatusUpdate::UNTIMED
    );
}

#[test]
fn messages_artifacts_and_unknown_states_are_ignored() {
    for body in [
        json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": []}}),
        json!({"artifactUpdate": {"taskId": TASK, "artifact": {}}}),
        json!({"kind": "artifact-update", "taskId": TASK}),
        edited_value(
            status_update(),
            "statusUpdate.status.state",
            "TASK_STATE_UNSPECIFIED",
        ),
        edited_value(legacy_status_update(), "status.state", "unknown"),
    ] {
        assert!(
            matches!(parse_value(body.clone()), Ok(Parsed::Ignored { .. })),
            "{body}"
        );
    }
}

fn edited_value(base: Value, path: &str, value: &str) -> Value {
    serde_json::from_slice(&edited(base, &[set(path, json!(value))])).unwrap()
}

#[test]
fn bad_notifications_name_what_was_wrong() {
    let missing = |edits: &[(&str, Option<Value>)]| {
        parse(&edited(status_update(), edits), &reading()).unwrap_err()
    };
    assert_eq!(
        missing(&[("statusUpdate.taskId", None)]),
        PayloadError::Missing("statusUpdate.taskId".into())
    );
    assert_eq!(
        missing(&[("statusUpdate.status", None)]),
        PayloadError::Missing("statusUpdate.status.state".into())
    );
    let fields = [
        (
            set("statusUpdate.status.state", json!("done")),
            "statusUpdate.status.state",
        ),
        (
            set("statusUpdate.status.timestamp", json!("yesterday")),
            "statusUpdate.status.timestamp",
        ),
        (
            set("statusUpdate.metadata", json!({"statsync.ref": "acme/api"})),
            "statusUpdate.metadata.statsync.ref",
        ),
        (
            set("statusUpdate.metadata", json!({"statsync.ref": 12})),
            "statusUpdate.metadata.statsync.ref",
        ),
        (
            set("statusUpdate.taskId", json!(" ")),
            "statusUpdate.taskId",
        ),
        (set("statusUpdate", json!("x")), "statusUpdate"),
    ];
    for (edit, field) in fields {
        let err = parse(&edited(status_update(), &[edit]), &reading()).unwrap_err();
        assert_eq!(invalid_field(err), field);
    }
    let err = parse_value(json!({"kind": "nonsense"})).unwrap_err();
    assert_eq!(invalid_field(err), "kind");
    let err = parse_value(json!({"hello": "world"})).unwrap_err();
    assert_eq!(invalid_field(err), "payload");
    let err = parse_value(json!({"taskId": TASK, "status": {"state": "working"}, "kind": "status-update", "metadata": {"statsync.ref": "x y"}})).unwrap_err();
    assert_eq!(invalid_field(err), "metadata.statsync.ref");
    let state = parse_value(edited_value(
        status_update(),
        "statusUpdate.status.state",
        "done",
    ));
    assert!(state
        .unwrap_err()
        .to_string()
        .contains("TASK_STATE_WORKING"));
}

proptest! {
    #[test]
    fn any_value_in_any_field_never_panics(
        path in prop::sample::select(vec![
            "statusUpdate", "statusUpdate.taskId", "statusUpdate.status",
            "statusUpdate.status.state", "statusUpdate.status.timestamp",
            "statusUpdate.status.message", "statusUpdate.status.message.parts",
            "statusUpdate.metadata", "statusUpdate.metadata.statsync", "task", "kind",
        ]),
        replacement in prop::option::of(arb_json()),
    ) {
        let _ = parse(&edited(status_update(), &[(path, replacement)]), &reading());
    }
}
