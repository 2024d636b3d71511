use super::*;
use std::collections::BTreeMap;

use crate::domain::SystemId;
use std::collections::HashMap;

struct MapEnv(HashMap<String, String>);
impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = std::env::temp_dir().join(format!("statsync-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = file.map(|text| {
        let p = dir.join("extra.toml");
        std::fs::write(&p, text).unwrap();
        p
    });
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = MapEnv(vars.iter().cloned().collect());
    let result = Settings::load_from(path.as_deref(), &vars, &env);
    let _ = std::fs::remove_dir_all(dir);
    result
}

#[test]
fn defaults_load_and_validate() {
    let s = load(None, &[]).unwrap();
    assert_eq!(s.http.port, 8080);
    assert_eq!(s.http.max_body_bytes, 1024 * 1024);
    assert_eq!(s.sync.conflict_window_ms, 5000);
    assert_eq!(s.sync.max_future_skew_ms, 60000);
    assert_eq!(s.sync.priorities[&SystemId::Linear], 1);
    assert!(s.secrets.database_url.is_none());
}

#[test]
fn file_then_environment_override_in_that_order() {
    let s = load(
        Some("[http]\nport = 9000\nhost = \"0.0.0.0\"\n"),
        &[
            ("STATSYNC__HTTP__PORT", "9100"),
            (
                "STATSYNC__WS__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
        ],
    )
    .unwrap();
    assert_eq!(s.http.port, 9100);
    assert_eq!(s.http.host, "0.0.0.0");
    assert_eq!(
        s.ws.allowed_origins,
        vec!["https://a.example", "https://b.example"]
    );
}

#[test]
fn a_bad_value_names_its_key() {
    let err = load(None, &[("STATSYNC__HTTP__PORT", "eighty")]).unwrap_err();
    assert!(err.to_string().contains("http.port"), "{err}");
    let err = load(Some("[sync]\nconflict_strategy = \"coin_flip\"\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("coin_flip"), "{err}");
    let err = load(Some("[http]\nprot = 1\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("prot"), "{err}");
    let err = load(Some("[linear]\napi_url = \"not a url\"\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("linear.api_url"), "{err}");
}

#[test]
fn secrets_come_from_the_environment_and_are_never_printed() {
    let s = load(
        None,
        &[
            ("GITHUB_WEBHOOK_SECRET", "hunter2"),
            ("STATSYNC_API_TOKENS", "t1, t2"),
        ],
    )
    .unwrap();
    assert_eq!(s.secrets.api_tokens.len(), 2);
    let printed = s.redacted_toml();
    assert!(!printed.contains("hunter2"));
    assert!(printed.contains("GITHUB_WEBHOOK_SECRET = \"[redacted]\""));
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn hook_ids_come_from_their_own_environment_variable_over_the_file() {
    let s = load(
        Some("[github.hook_ids]\n\"a/one\" = 1\n\"b/two\" = 2\n"),
        &[(HOOK_IDS_VAR, " b/two=22, octo-org/hello.world=456 ,")],
    )
    .unwrap();
    let want: BTreeMap<String, u64> = [("a/one", 1), ("b/two", 22), ("octo-org/hello.world", 456)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(s.github.hook_ids, want);
    assert!(load(None, &[(HOOK_IDS_VAR, "")])
        .unwrap()
        .github
        .hook_ids
        .is_empty());
}

#[test]
fn a_bad_hook_ids_entry_is_named() {
    for (value, entry, why) in [
        ("a/b=1,c/d", "c/d", "has no `=`"),
        ("a/b=1,nope=2", "nope=2", "not owner/name"),
        ("a/b=x", "a/b=x", "not a positive integer"),
        ("a/b=-3", "a/b=-3", "not a positive integer"),
        ("a/b=1,a/b=2", "a/b=2", "repeats `a/b`"),
    ] {
        let err = load(None, &[(HOOK_IDS_VAR, value)])
            .unwrap_err()
            .to_string();
        assert!(err.contains(HOOK_IDS_VAR), "{value}: {err}");
        assert!(err.contains(&format!("`{entry}`")), "{value}: {err}");
        assert!(err.contains(why), "{value}: {err}");
    }
}

#[test]
fn an_invalid_enum_value_is_refused_with_the_valid_ones_listed() {
    let err = load(None, &[("STATSYNC__SYNC__CONFLICT_STRATEGY", "random")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sync.conflict_strategy"), "{err}");
    assert!(err.contains("`random`"), "{err}");
    assert!(
        err.contains("priority_based, timestamp_based, manual, merge"),
        "{err}"
    );
    let err = load(None, &[("STATSYNC__LOG__FORMAT", "xml")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("log.format") && err.contains("pretty, json"),
        "{err}"
    );
}

#[test]
fn a_log_level_that_would_silence_everything_is_refused() {
    let err = load(None, &[("STATSYNC__LOG__LEVEL", "loud")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("log.level") && err.contains("`loud`"), "{err}");
    assert!(
        err.contains("trace, debug, info, warn, error, off"),
        "{err}"
    );
    for ok in [
        "debug",
        "WARN",
        "info,statsync=debug",
        "statsync::dispatch=trace",
    ] {
        let s = load(None, &[("STATSYNC__LOG__LEVEL", ok)]).unwrap();
        assert_eq!(s.log.level, ok);
    }
}

#[test]
fn a_replica_with_neither_role_is_refused() {
    let off = |k| (k, "false");
    let err = load(
        None,
        &[
            off("STATSYNC__SERVER__API_ENABLED"),
            off("STATSYNC__SERVER__WORKER_ENABLED"),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("server.api_enabled") && err.contains("server.worker_enabled"),
        "{err}"
    );
    let worker_only = load(None, &[off("STATSYNC__SERVER__API_ENABLED")]).unwrap();
    assert!(!worker_only.server.api_enabled && worker_only.server.worker_enabled);
}

#[test]
fn an_applier_may_wait_for_company_up_to_a_second() {
    assert_eq!(load(None, &[]).unwrap().engine.gather_ms, 0);
    let s = load(None, &[("STATSYNC__ENGINE__GATHER_MS", "1000")]).unwrap();
    assert_eq!(s.engine.gather_ms, 1000);
    let err = load(None, &[("STATSYNC__ENGINE__GATHER_MS", "1001")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("engine.gather_ms") && err.contains("1000"),
        "{err}"
    );
}

#[test]
fn an_unknown_statsync_variable_and_missing_secrets_are_warned_about() {
    let s = load(None, &[("STATSYNC_HTTP_PORT", "9000")]).unwrap();
    assert_eq!(s.http.port, 8080);
    let warnings = s.warnings.join("\n");
    assert!(
        warnings.contains("STATSYNC_HTTP_PORT is not a statsync variable"),
        "{warnings}"
    );
    assert!(warnings.contains("no webhook secret is set"), "{warnings}");
    assert!(
        warnings.contains("STATSYNC_API_TOKENS is not set"),
        "{warnings}"
    );

    let s = load(
        None,
        &[
            ("GITHUB_WEBHOOK_SECRET", "s"),
            ("STATSYNC_API_TOKENS", "t"),
            ("STATSYNC_API_TOKENS_FILE", "/dev/null"),
            (HOOK_IDS_VAR, "a/b=1"),
            ("STATSYNC__HTTP__PORT", "9000"),
        ],
    )
    .unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_connectors_section_must_name_a_system_without_a_section_of_its_own() {
    let err = load(
        Some("[connectors.example]\nurl = \"https://example.test\"\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`connectors.example`") && err.contains("registered system"),
        "{err}"
    );
    let err = load(Some("[connectors.github]\napi_url = \"x\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("its own [github] section"), "{err}");
    let err = load(None, &[("STATSYNC__CONNECTORS__POSTGRESQL__URL", "x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("canonical store"), "{err}");
}

#[test]
fn a_connector_reads_its_own_credentials() {
    let env = MapEnv(HashMap::from([
        ("EXAMPLE_WEBHOOK_SECRET".to_owned(), "s3cret".to_owned()),
        ("GITLAB_API_TOKEN".to_owned(), "not asked for".to_owned()),
    ]));
    let vars = [
        "EXAMPLE_WEBHOOK_SECRET".to_owned(),
        "EXAMPLE_API_TOKEN".to_owned(),
    ];
    let secrets = Secrets::from_env(&env, &vars).unwrap();
    use secrecy::ExposeSecret;
    let hook = secrets.of_connector("example", "WEBHOOK_SECRET").unwrap();
    assert_eq!(hook.expose_secret(), "s3cret");
    assert!(secrets.of_connector("example", "API_TOKEN").is_none());
    assert!(secrets.of_connector("gitlab", "API_TOKEN").is_none());
    let described = secrets.describe(&vars);
    assert_eq!(described["EXAMPLE_WEBHOOK_SECRET"], "[redacted]");
    assert_eq!(described["EXAMPLE_API_TOKEN"], "(not set)");
}

#[test]
fn the_public_url_and_projects_are_checked_and_webhook_urls_built_from_it() {
    let s = load(
        Some("[server]\npublic_url = \"https://sync.acme.dev/statsync/\"\n[github]\nprojects = [\"acme/7\"]\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        s.server.webhook_url("github").as_deref(),
        Some("https://sync.acme.dev/statsync/webhooks/github")
    );
    assert_eq!(load(None, &[]).unwrap().server.webhook_url("linear"), None);
    for bad in ["sync.acme.dev", "https://", "https://x/?a=1", "ftp://x"] {
        let err = load(None, &[("STATSYNC__SERVER__PUBLIC_URL", bad)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.public_url") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    let err = load(Some("[github]\nprojects = [\"acme\"]\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("github.projects") && err.contains("OWNER/NUMBER"),
        "{err}"
    );
}
