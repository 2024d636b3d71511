//! `statsync demo`: the real service on a throwaway embedded database, wired to
//! in-process stand-ins for GitHub and Linear that answer the API calls statsync makes
//! and send the signed webhooks the real systems send, while a small team works through
//! stories in them (see `script`). Nothing leaves the machine: everything listens on
//! loopback, and the database is removed when the demo ends.

mod courier;
mod script;
mod standins;
pub mod world;

use std::time::Duration;

use secrecy::SecretString;

use crate::config::Settings;
use crate::domain::policy::Strategy;
use crate::domain::EntityKind;
use crate::startup::{ensure_database, Application};
use crate::store::embedded::EmbeddedPostgres;

use standins::Shared;
use world::{BOT_LOGIN, LINEAR_SELF, TEAM};

const DATABASE: &str = "statsync_demo";

/// A demo started and serving; `run_until_stopped` ends it and removes its data.
pub struct Demo {
    app: Application,
    cluster: EmbeddedPostgres,
    standins: actix_web::dev::ServerHandle,
    tasks: Vec<actix_web::rt::task::JoinHandle<()>>,
    shared: std::sync::Arc<Shared>,
    /// The bearer token of the demo's API.
    pub token: String,
}

fn secret(value: &str) -> Option<SecretString> {
    Some(SecretString::from(value.to_owned()))
}

/// The settings that point statsync at the stand-ins, with credentials made up for
/// this run.
fn wire(settings: &mut Settings, standins: &str, database_url: String, token: &str) {
    settings.github.api_url = format!("{standins}/gh");
    settings.github.graphql_url = format!("{standins}/gh/graphql");
    settings.github.actor_login = Some(BOT_LOGIN.to_owned());
    settings.github.repos = Vec::new();
    settings.linear.api_url = format!("{standins}/linear/graphql");
    settings.linear.actor_id = Some(LINEAR_SELF.to_owned());
    settings.linear.teams = vec![TEAM.to_owned()];
    settings.agentapi.url = String::new();
    settings.sync.reconcile_interval_s = 0;
    // The team works in fast motion (a change every few seconds), so the window in
    // which two systems' changes conflict shrinks with it: only edits made at the same
    // moment conflict, as two people's edits minutes apart would not in real time.
    settings.sync.conflict_window_ms = settings.sync.conflict_window_ms.min(1000);
    // Two people editing one issue at once wait for a person on the board.
    settings
        .sync
        .strategy_by_kind
        .insert(EntityKind::Issue, Strategy::Manual);
    let s = &mut settings.secrets;
    s.database_url = secret(&database_url);
    s.github_webhook_secret = secret(&format!("gh-{}", uuid::Uuid::new_v4()));
    s.linear_webhook_secret = secret(&format!("lin-{}", uuid::Uuid::new_v4()));
    s.agentapi_webhook_secret = secret(&format!("agent-{}", uuid::Uuid::new_v4()));
    s.github_token = secret("ghp_demo_token");
    s.github_app_id = None;
    s.github_app_private_key = None;
    s.linear_api_key = secret("lin_api_demo_key");
    s.api_tokens = vec![SecretString::from(token.to_owned())];
    // The warnings were about the environment's settings, which the demo replaced.
    settings.warnings.clear();
}

fn exposed(s: &Option<SecretString>) -> String {
    use secrecy::ExposeSecret;
    s.as_ref()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default()
}

impl Demo {
    /// Starts the stand-ins, a fresh database under `settings.database.embedded_dir`,
    /// the service and the team, who make one change every `pace`.
    pub async fn start(mut settings: Settings, pace: Duration) -> anyhow::Result<Demo> {
        let run = (chrono::Utc::now().timestamp() & 0xffff_ffff) as u32;
        let shared = Shared::new(world::World::new(run));
        let (standins_url, server) = standins::serve(shared.clone())?;
        let standins = server.handle();
        actix_web::rt::spawn(server);

        let cluster = EmbeddedPostgres::start_ephemeral(&settings.database.embedded_dir).await?;
        ensure_database(&cluster.url("postgres"), DATABASE).await?;
        let token = format!("demo-{}", uuid::Uuid::new_v4().simple());
        wire(&mut settings, &standins_url, cluster.url(DATABASE), &token);
        let secrets = courier::Secrets {
            github: exposed(&settings.secrets.github_webhook_secret),
            linear: exposed(&settings.secrets.linear_webhook_secret),
            agent: exposed(&settings.secrets.agentapi_webhook_secret),
        };
        let app = Application::build(settings).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let tasks = vec![
            actix_web::rt::spawn(courier::run(shared.clone(), base, secrets)),
            actix_web::rt::spawn(script::run(shared.clone(), pace)),
        ];
        Ok(Demo {
            app,
            cluster,
            standins,
            tasks,
            shared,
            token,
        })
    }

    pub fn port(&self) -> u16 {
        self.app.port()
    }

    /// What the stand-ins show now.
    pub fn view(&self) -> View {
        View(self.shared.clone())
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.app.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the handle's stop), then stops the team, the
    /// stand-ins and the database, which is removed.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.app.run_until_stopped().await;
        for task in &self.tasks {
            task.abort();
        }
        self.standins.stop(false).await;
        if let Err(e) = self.cluster.stop().await {
            tracing::error!(error = %e, "could not stop the demo's PostgreSQL");
        }
        served
    }
}

/// A look into the stand-ins, as a person would look at GitHub and Linear.
#[derive(Clone)]
pub struct View(std::sync::Arc<Shared>);

impl View {
    /// The name of the state a Linear issue (`ENG-1`) shows in the stand-in now.
    pub fn linear_state(&self, identifier: &str) -> Option<&'static str> {
        let w = self.0.lock();
        let id = w.linear_id(identifier)?;
        let state = w.linear.get(&id)?.state;
        world::linear_state(state).map(|s| s.1)
    }

    /// A GitHub issue's state in the stand-in now: `open`, or `closed` with its reason.
    pub fn github_issue(&self, number: u64) -> Option<String> {
        let w = self.0.lock();
        let issue = w.issues.get(&number)?;
        Some(match (&issue.open, &issue.reason) {
            (true, _) => "open".to_owned(),
            (false, Some(reason)) => format!("closed/{reason}"),
            (false, None) => "closed".to_owned(),
        })
    }
}
