//! The `statsync` command: serve | migrate | check-config.

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
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective settings, secrets redacted; fail naming any bad key.
    CheckConfig,
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
        print!("{}", settings.redacted_toml());
        return ExitCode::SUCCESS;
    }
    statsync::telemetry::init(&settings.log);
    let result = actix_web::rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve => {
                Application::build(settings)
                    .await?
                    .run_until_stopped()
                    .await
            }
            Command::Migrate => {
                let database = Database::open(&settings).await?;
                let store = Store::connect(&database.url, &settings.database)?;
                let outcome = startup::migrate(&store).await;
                database.close().await;
                let applied = outcome?;
                if applied.is_empty() {
                    println!("database schema is up to date");
                } else {
                    println!("applied: {}", applied.join(", "));
                }
                Ok(())
            }
            Command::CheckConfig => Ok(()),
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
