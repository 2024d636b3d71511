//! The `statsync` command: serve | demo | migrate | backfill | check-config | doctor |
//! webhooks register | mappings suggest.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use statsync::config::Settings;
use statsync::startup::{self, Application, Database};
use statsync::store::Store;

#[derive(Parser)]
#[command(
    name = "statsync",
    version,
    about = "Keeps work status in step across Linear, GitHub, agents and PostgreSQL"
)]
struct Cli {
    /// A TOML file layered over the built-in defaults (config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (HTTP, webhooks, engine, outbound sync).
    Serve,
    /// Run the service on a throwaway database beside stand-ins for GitHub and Linear,
    /// with a small team changing issues and pull requests in them, and watch it sync.
    Demo {
        /// Seconds between the team's changes.
        #[arg(long, default_value_t = 3, value_name = "SECONDS")]
        pace: u64,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// List a GitHub repository's or a Linear team's issues and apply them (low
    /// priority, real updated-at times), resuming an interrupted run from its cursor.
    Backfill {
        /// github or linear
        #[arg(long)]
        system: String,
        /// owner/name (with --system github)
        #[arg(long)]
        repo: Option<String>,
        /// team key (with --system linear)
        #[arg(long)]
        team: Option<String>,
        /// Only what changed since the last completed run of this scope.
        #[arg(long)]
        incremental: bool,
    },
    /// Print the effective settings, secrets redacted; fail naming any bad key.
    CheckConfig,
    /// One checklist: database, credentials and permissions, webhooks and their recent
    /// deliveries, live states against the mappings, clocks. Exit 1 when a check fails.
    Doctor {
        /// The checklist as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Webhooks: `webhooks register [--dry-run]`.
    Webhooks {
        #[command(subcommand)]
        action: WebhooksCommand,
    },
    /// Status vocabularies: `mappings suggest --team KEY | --project OWNER/NUMBER`.
    Mappings {
        #[command(subcommand)]
        action: MappingsCommand,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Creates the GitHub and Linear webhooks doctor finds missing (and mends wrong
    /// ones), sending to server.public_url, signed with statsync's secrets.
    Register {
        /// Print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum MappingsCommand {
    /// Prints a mappings.toml section for a Linear team's workflow states or a Projects
    /// v2 board's Status options, read live, with a comment on each guess.
    Suggest {
        /// A Linear team key (ENG): needs LINEAR_API_KEY.
        #[arg(long, conflicts_with = "project")]
        team: Option<String>,
        /// A board as OWNER/NUMBER (acme/7): needs GITHUB_TOKEN.
        #[arg(long)]
        project: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("statsync: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig = cli.command {
        for warning in &settings.warnings {
            eprintln!("statsync: warning: {warning}");
        }
        print!("{}", settings.redacted_toml());
        return ExitCode::SUCCESS;
    }
    statsync::telemetry::init(&settings.log);
    // The demo replaces the credentials these warnings are about.
    if !matches!(cli.command, Command::Demo { .. }) {
        for warning in &settings.warnings {
            tracing::warn!("{warning}");
        }
    }
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve => {
                Application::build(settings)
                    .await?
                    .run_until_stopped()
                    .await
            }
            Command::Demo { pace } => demo(settings, pace).await,
            Command::Migrate => {
                let database = Database::open(&settings).await?;
                let store = Store::connect(&database.url, settings.database.pool())?;
                let outcome = startup::migrate(&store).await;
                store.close();
                // Stops the embedded cluster only if this command started it: a
                // running service's database stays up.
                drop(database);
                let applied = outcome?;
                if applied.is_empty() {
                    println!("database schema is up to date");
                } else {
                    println!("applied: {}", applied.join(", "));
                }
                Ok(())
            }
            Command::Backfill {
                system,
                repo,
                team,
                incremental,
            } => backfill(settings, &system, repo, team, incremental).await,
            Command::CheckConfig => Ok(()),
            Command::Doctor { json } => doctor(&settings, json).await,
            Command::Webhooks {
                action: WebhooksCommand::Register { dry_run },
            } => register(&settings, dry_run).await,
            Command::Mappings {
                action: MappingsCommand::Suggest { team, project },
            } => suggest(&settings, team, project).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("statsync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `demo`: on loopback only, its database beside the embedded one and removed at the end.
async fn demo(mut settings: Settings, pace: u64) -> anyhow::Result<()> {
    let dir = &settings.database.embedded_dir;
    settings.database.embedded_dir = dir.parent().unwrap_or(dir).join("demo");
    settings.http.host = "127.0.0.1".into();
    let demo =
        statsync::demo::Demo::start(settings, std::time::Duration::from_secs(pace.max(1))).await?;
    let (port, token) = (demo.port(), demo.token.clone());
    println!("statsync demo: the board is at http://127.0.0.1:{port}/#token={token}");
    println!("  a team is changing issues in stand-ins for Linear and GitHub; statsync keeps them in step");
    println!("  API token: {token}");
    println!("  curl -H 'Authorization: Bearer {token}' 'http://127.0.0.1:{port}/api/v1/entities?system=linear&external_id=ENG-1'");
    println!("  curl -H 'Authorization: Bearer {token}' 'http://127.0.0.1:{port}/api/v1/conflicts?state=open'");
    println!("  Ctrl-C ends it and removes its database");
    demo.run_until_stopped().await
}

/// Runs one backfill in a private instance of the service (its engine applies what the
/// listing stores), printing progress lines and the summary.
async fn backfill(
    mut settings: Settings,
    system: &str,
    repo: Option<String>,
    team: Option<String>,
    incremental: bool,
) -> anyhow::Result<()> {
    use statsync::backfill::{Mode, Scope, Trigger};
    let scope = match (system, repo, team) {
        ("github", Some(repo), None) => Scope::github(&repo)?,
        ("linear", None, Some(team)) => Scope::linear(&team)?,
        ("github", _, _) => {
            anyhow::bail!("--system github takes --repo owner/name (and no --team)")
        }
        ("linear", _, _) => anyhow::bail!("--system linear takes --team KEY (and no --repo)"),
        (other, _, _) => {
            anyhow::bail!("--system `{other}` cannot be backfilled; use github or linear")
        }
    };
    let mode = if incremental {
        Mode::Incremental
    } else {
        Mode::Full
    };
    settings.http.port = 0;
    settings.http.host = "127.0.0.1".into();
    settings.sync.reconcile_interval_s = 0;
    let app = Application::build(settings).await?;
    let service = app.state().backfill.clone();
    service.check_not_paused(scope.system).await?;
    let handle = app.handle();
    let serving = actix_web::rt::spawn(app.run_until_stopped());
    println!("backfill {scope} ({})", mode.as_str());
    let printer = |p: statsync::backfill::Progress| {
        println!("  {:>3}%  page {}  {} items", p.percent, p.pages, p.seen);
    };
    let id = uuid::Uuid::new_v4();
    let outcome = service.run(id, &scope, mode, Trigger::Cli, &printer).await;
    handle.stop(true).await;
    let _ = serving.await;
    let s = outcome?;
    let c = s.counts;
    println!(
        "{}: seen {}, created {}, changed {}, unchanged {}, failed {} (operation {})",
        s.state, c.seen, c.created, c.changed, c.unchanged, c.failed, s.operation_id
    );
    match s.error {
        Some(e) if s.state != "completed" => anyhow::bail!("backfill {}: {e}", s.state),
        _ => Ok(()),
    }
}

/// Prints the checklist; fails (exit 1) when a check failed.
async fn doctor(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let connectors = statsync::startup::connectors(settings)?;
    let report = statsync::doctor::run(settings, &connectors).await;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{}", report.render()),
    }
    match report.ok {
        true => Ok(()),
        false => Err(anyhow::anyhow!(
            "{} checks failed",
            report.count(statsync::doctor::Level::Fail)
        )),
    }
}

/// `webhooks register`: prints each step as it is (or would be) made.
async fn register(settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    use statsync::doctor::register;
    let connectors = statsync::startup::connectors(settings)?;
    let plan = register::plan(settings, &connectors).await?;
    for note in &plan.blocked {
        println!("cannot: {note}");
    }
    if plan.steps.is_empty() {
        println!("every webhook statsync needs is in place");
        return Ok(());
    }
    if dry_run {
        for step in &plan.steps {
            println!("would {}", step.describe);
        }
        return Ok(());
    }
    let failed = register::apply(&plan, settings, &connectors).await;
    for step in &plan.steps {
        match failed.iter().find(|(d, _)| d == &step.describe) {
            Some((_, why)) => println!("failed to {}: {why}", step.describe),
            None => println!("done: {}", step.describe),
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(anyhow::anyhow!(
            "{} of {} steps failed",
            failed.len(),
            plan.steps.len()
        )),
    }
}

/// `mappings suggest`: reads the team's states or the board's options and prints the
/// section.
async fn suggest(
    settings: &Settings,
    team: Option<String>,
    project: Option<String>,
) -> anyhow::Result<()> {
    use statsync::domain::mapping::suggest;
    let connectors = statsync::startup::connectors(settings)?;
    let section = match (team, project) {
        (Some(team), None) => {
            let states = connectors.linear.team_states(&team).await?;
            if states.is_empty() {
                anyhow::bail!("Linear team {team} has no workflow states (is the key right?)");
            }
            let states: Vec<(String, String)> =
                states.into_iter().map(|s| (s.name, s.state_type)).collect();
            suggest::render_linear(&team.to_uppercase(), &states)
        }
        (None, Some(project)) => {
            let Ok(p) = statsync::domain::names::ProjectRef::parse(&project) else {
                anyhow::bail!("--project takes OWNER/NUMBER (acme/7), not `{project}`");
            };
            let (title, options) = connectors
                .github
                .project_status_options(&p.owner, p.number)
                .await?;
            suggest::render_project(&format!("{p} \"{title}\""), &options)
        }
        _ => anyhow::bail!("give one of --team KEY or --project OWNER/NUMBER"),
    };
    print!("{section}");
    Ok(())
}
