//! `statsync mappings suggest`: the real binary reads a team's workflow states or a
//! board's Status options from the fakes and prints a section that loads.

use super::*;

/// Runs `statsync mappings suggest ARGS` against the fakes; its exit code and output.
async fn suggest(args: &[&str], github: &Fake, linear: &Fake) -> (Option<i32>, String, String) {
    let mut all = vec!["mappings", "suggest"];
    all.extend_from_slice(args);
    let env = [
        ("GITHUB_TOKEN", GITHUB_TOKEN.to_owned()),
        ("LINEAR_API_KEY", LINEAR_KEY.to_owned()),
        (
            "STATSYNC__GITHUB__GRAPHQL_URL",
            format!("{}/graphql", github.url),
        ),
        (
            "STATSYNC__LINEAR__API_URL",
            format!("{}/graphql", linear.url),
        ),
        ("STATSYNC__LOG__LEVEL", "warn".to_owned()),
    ];
    statsync(&all, &env).await
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
    let (code, out, err) = suggest(&["--team", "eng"], &gh, &lin).await;
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

    let (code, out, err) = suggest(&["--project", "acme/7"], &gh, &lin).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("acme/7 \"Roadmap\""), "{out}");
    assert!(out.contains("# \"Parking lot\""), "{out}");
    loads(&out.replace("[github.project.", "[github.repos.\"acme/web\".project."));

    let (code, _, err) = suggest(&["--project", "acme/8"], &gh, &lin).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("acme has no project 8"), "{err}");
    let (code, _, err) = suggest(&["--project", "acme"], &gh, &lin).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("OWNER/NUMBER"), "{err}");
}
