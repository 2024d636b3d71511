//! `statsync mappings suggest`: the real binary reads a team's workflow states or a
//! board's Status options from the fakes and prints a section that loads.

use std::process::{Command, Stdio};

use super::*;

/// Runs `statsync mappings suggest ARGS` against the fakes; its exit code and output.
fn suggest(args: &[&str], github: &Fake, linear: &Fake) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_statsync"))
        .args(["mappings", "suggest"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .env("LINEAR_API_KEY", LINEAR_KEY)
        .env(
            "STATSYNC__GITHUB__GRAPHQL_URL",
            format!("{}/graphql", github.url),
        )
        .env(
            "STATSYNC__LINEAR__API_URL",
            format!("{}/graphql", linear.url),
        )
        .env("STATSYNC__LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run the statsync binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The shipped mappings with `section` appended, loaded as statsync loads a file.
fn loads(section: &str) {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/mappings.toml"))
            .unwrap();
    statsync::domain::MappingTable::from_toml_str(&format!("{shipped}\n{section}"))
        .unwrap_or_else(|e| panic!("{e}\n{section}"));
}

#[actix_web::test]
async fn mappings_suggest_prints_a_loadable_section_for_a_teams_states_and_a_boards_options() {
    let (gh, lin) = (fakes::github().await, fakes::linear().await);
    let (gh2, lin2) = (gh.clone(), lin.clone());
    let (code, out, err) =
        actix_web::rt::task::spawn_blocking(move || suggest(&["--team", "eng"], &gh2, &lin2))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("[linear.teams.ENG.states]"), "{out}");
    assert!(out.contains("\"In Review\" = \"in_review\""), "{out}");
    assert!(
        out.contains("in_review = { type = \"started\", name = \"In Review\" }"),
        "{out}"
    );
    loads(&out);
    let asked = lin.requests_for("workflowStates");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].body["variables"]["team"], "ENG");

    let (gh2, lin2) = (gh.clone(), lin.clone());
    let (code, out, err) =
        actix_web::rt::task::spawn_blocking(move || suggest(&["--project", "acme/7"], &gh2, &lin2))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("acme/7 \"Roadmap\""), "{out}");
    assert!(out.contains("# \"Parking lot\""), "{out}");
    loads(&out.replace("[github.project.", "[github.repos.\"acme/web\".project."));

    let (gh2, lin2) = (gh.clone(), lin.clone());
    let (code, _, err) =
        actix_web::rt::task::spawn_blocking(move || suggest(&["--project", "acme/8"], &gh2, &lin2))
            .await
            .unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("acme has no project 8"), "{err}");
    let (code, _, err) = suggest(&["--project", "acme"], &gh, &lin);
    assert_eq!(code, Some(1));
    assert!(err.contains("OWNER/NUMBER"), "{err}");
}
