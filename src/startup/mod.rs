//! The one startup seam: `Application::build(settings)` wires the database, the actors
//! and the HTTP server; `port()` tells where it listens (tests bind port 0);
//! `run_until_stopped()` serves until SIGINT/SIGTERM and then releases everything,
//! including an embedded PostgreSQL it started.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;

use actix::{Actor, Addr};

use crate::actors::conflict_resolver::ConflictResolver;
use crate::actors::event_processor::{Engine, EventProcessor, Lifecycle};
use crate::actors::hints::{Hints, Listen, Listeners, StopHints};
use crate::actors::intake_writer::IntakeWriter;
use crate::actors::messages::Backlog;
use crate::actors::status_mapper::StatusMapper;
use crate::actors::sync_monitor::SyncMonitor;
use crate::actors::synchronizer::{Parts, StatusSynchronizer};
use crate::actors::websocket_manager::{Shutdown, WebSocketManager};
use crate::config::Settings;
use crate::dispatch::{DispatchContext, Dispatcher, StopDispatch};
use crate::http::errors::ApiError;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::store::embedded::EmbeddedPostgres;
use crate::store::{self, inbound, migrations, Store};
use crate::systems::identity::{self, Identities};

mod connectors;

pub use connectors::{connectors, Connectors};

/// The database statsync uses in the embedded cluster.
const EMBEDDED_DATABASE: &str = "statsync";

/// Where the data lives: a server named by DATABASE_URL, or a private cluster.
pub struct Database {
    pub url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    pub async fn open(settings: &Settings) -> anyhow::Result<Database> {
        if let Some(url) = &settings.secrets.database_url {
            return Ok(Database {
                url: url.expose_secret().to_owned(),
                embedded: None,
            });
        }
        let dir = &settings.database.embedded_dir;
        tracing::info!(dir = %dir.display(), "DATABASE_URL is not set: using the embedded PostgreSQL");
        let cluster = EmbeddedPostgres::start(Path::new(dir)).await?;
        ensure_database(&cluster.url("postgres"), EMBEDDED_DATABASE).await?;
        Ok(Database {
            url: cluster.url(EMBEDDED_DATABASE),
            embedded: Some(cluster),
        })
    }

    pub async fn close(&self) {
        if let Some(cluster) = &self.embedded {
            if let Err(e) = cluster.stop().await {
                tracing::error!(error = %e, "could not stop the embedded PostgreSQL");
            }
        }
    }
}

/// CREATE DATABASE when it does not exist (the embedded cluster's first start).
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connecting to the embedded PostgreSQL")?;
    let conn = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // identifiers cannot be bound as parameters; `name` is a constant of ours
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
    }
    drop(client);
    let _ = conn.await;
    Ok(())
}

/// Applies migrations on a dedicated connection (the advisory lock is per session).
pub async fn migrate(store: &Store) -> anyhow::Result<Vec<String>> {
    let mut client = store.client().await.context("connecting to PostgreSQL")?;
    let client: &mut tokio_postgres::Client = &mut client;
    Ok(migrations::migrate(client).await?)
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    database: Database,
    state: web::Data<AppState>,
    engine: Arc<Engine>,
    dispatcher: Option<Addr<Dispatcher>>,
    hints: Addr<Hints>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        let database = Database::open(&settings).await?;
        let store = Store::connect(&database.url, settings.database.pool())?;
        migrate(&store).await?;

        let metrics = Arc::new(Metrics::new());
        let backlog = Arc::new(Backlog::default());
        backlog.set(inbound::count_pending(&store.client().await?).await?);
        let mapper = StatusMapper::new(Arc::new(settings.mappings.load()?)).start();
        let resolver = ConflictResolver::new(settings.sync.policy()).start();
        let outward = Outward::start(&store, &settings, &metrics, &database.url).await?;
        let (ws, hints) = (outward.ws.clone(), outward.hints.clone());
        let mut committed = vec![ws.clone().recipient(), hints.clone().recipient()];
        let mut listening = vec![ws.clone().recipient()];
        // The outbox dispatcher (worker replicas only) hears of every commit that wrote
        // outbox rows.
        let connected = connectors(&settings)?;
        let dispatcher =
            start_dispatcher(&store, &mapper, &settings, &metrics, &outward, &connected);
        if let Some(d) = &dispatcher {
            committed.push(d.clone().recipient());
            listening.push(d.clone().recipient());
        }
        let backfill = Arc::new(crate::backfill::Backfill::new(
            store.clone(),
            settings.clone(),
            connected.registry.clone(),
            vec![ws.clone().recipient()],
        )?);
        crate::backfill::start_reconciler(backfill.clone());
        let identities = identities(&settings, &metrics, &connected).await;
        let engine = Arc::new(Engine {
            store: store.clone(),
            mapper,
            resolver,
            settings: settings.clone(),
            identities,
            connectors: connected.registry.clone(),
            metrics: metrics.clone(),
            backlog: backlog.clone(),
            committed,
            lifecycle: Lifecycle::default(),
            saturated: Default::default(),
            gathering: Default::default(),
        });
        let processor = EventProcessor::new(engine.clone()).start();
        hints.do_send(Listen(Listeners {
            events: listening,
            inbound: (settings.server.worker_enabled)
                .then(|| processor.clone().recipient())
                .into_iter()
                .collect(),
        }));
        let sync = synchronizer(&store, &settings, &metrics, backlog, processor, &outward);
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            store,
            sync,
            ws,
            connectors: connected.registry.clone(),
            ws_connections: Arc::new(http::connections::Connections::new(
                metrics.streams.ws_connections.clone(),
                metrics.streams.ws_unauthenticated.clone(),
            )),
            backfill,
        });

        let (port, server) = serve(&settings, state.clone())?;
        tracing::info!(port, "statsync listening");
        Ok(Application {
            port,
            server,
            database,
            state,
            engine,
            dispatcher,
            hints,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Stops the server from outside (tests, signal handlers).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let ws = self.state.ws.clone();
        actix_web::rt::spawn(async move {
            stop_signal().await;
            tracing::info!("stopping: closing WebSockets, finishing in-flight requests");
            // Long-lived connections would otherwise hold the graceful stop for the
            // whole grace period.
            let _ = ws.send(Shutdown).await;
            handle.stop(true).await;
        });
        let served = self.server.await;
        self.state.sync.stop_monitor().await;
        // Requests are finished; let the engine commit what it holds, then release
        // the database.
        let grace = Duration::from_secs(self.engine.settings.server.shutdown_grace_s);
        // The dispatcher hands unstarted rows back and finishes its calls meanwhile.
        let dispatch_stopped = async {
            if let Some(dispatcher) = &self.dispatcher {
                let _ = dispatcher.send(StopDispatch { grace }).await;
            }
        };
        tokio::join!(self.engine.lifecycle.stop(grace), dispatch_stopped);
        // Nothing reads or listens on a database about to close (also when stopped
        // through the handle rather than a signal).
        let _ = self.state.ws.send(Shutdown).await;
        let _ = self.hints.send(StopHints).await;
        // The pool's connections end before the server they talk to.
        self.state.store.close();
        self.database.close().await;
        tracing::info!("statsync stopped");
        served.context("HTTP server")
    }
}

/// SIGTERM (Kubernetes) or SIGINT (a terminal).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Binds `http.host:http.port` and starts the HTTP server over `state`.
fn serve(
    settings: &Settings,
    state: web::Data<AppState>,
) -> anyhow::Result<(u16, actix_web::dev::Server)> {
    let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
        .with_context(|| format!("binding {}:{}", settings.http.host, settings.http.port))?;
    let port = listener.local_addr()?.port();
    let app_state = state;
    let limit = settings.http.max_body_bytes;
    let api_enabled = settings.server.api_enabled;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(limit))
            .app_data(
                web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::Malformed(format!("invalid query: {e}")).into()
                }),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::Malformed(format!("invalid path: {e}")).into()),
            )
            .wrap(actix_web::middleware::from_fn(
                http::body_deadline::body_deadline,
            ))
            .wrap(actix_web::middleware::from_fn(http::request_id::request_id))
            .configure(|cfg| http::routes(cfg, api_enabled))
    })
    .shutdown_timeout(settings.server.shutdown_grace_s)
    // Ours (see `run_until_stopped`): WebSockets are told before the server stops.
    .disable_signals()
    .listen(listener)?;
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    Ok((port, server.run()))
}

/// Who statsync's own credentials act as. Configured, or asked of each API on worker
/// replicas (an API that does not answer is asked again every minute).
async fn identities(
    settings: &Settings,
    metrics: &Metrics,
    connected: &Connectors,
) -> Arc<Identities> {
    let identities = Arc::new(Identities::new(
        settings.github.actor_login.clone(),
        settings.linear.actor_id.clone(),
    ));
    if settings.server.worker_enabled {
        let secrets = &settings.secrets;
        identity::discover(
            identities.clone(),
            (secrets.github_token.is_some() || secrets.github_app_id.is_some())
                .then(|| connected.github.clone()),
            secrets
                .linear_api_key
                .is_some()
                .then(|| connected.linear.clone()),
            metrics.outbound.identity_discovery_failures.clone(),
        )
        .await;
    }
    identities
}

/// The actors that carry commits outward on every replica, whatever its roles.
struct Outward {
    ws: Addr<WebSocketManager>,
    hints: Addr<Hints>,
    monitor: Addr<SyncMonitor>,
}

impl Outward {
    async fn start(
        store: &Store,
        settings: &Arc<Settings>,
        metrics: &Arc<Metrics>,
        database_url: &str,
    ) -> anyhow::Result<Outward> {
        // New subscribers start at the log's end.
        let delivered = store::events::last_seq(&store.client().await?).await?;
        let ws = WebSocketManager::new(store.clone(), settings.clone(), delivered, metrics.clone())
            .start();
        // Other replicas hear of this one's commits through coalesced NOTIFY hints.
        let hints = Hints::new(store.clone(), database_url.to_owned(), metrics.clone()).start();
        let monitor = SyncMonitor::new(
            store.clone(),
            settings.alerts.clone(),
            metrics.clone(),
            vec![ws.clone().recipient(), hints.clone().recipient()],
        )
        .start();
        Ok(Outward { ws, hints, monitor })
    }
}

/// The StatusSynchronizer over the engine's processor and the intake writers that
/// commit deliveries (waking the processor here and, through hints, elsewhere).
fn synchronizer(
    store: &Store,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    backlog: Arc<Backlog>,
    processor: Addr<EventProcessor>,
    outward: &Outward,
) -> StatusSynchronizer {
    let writer = IntakeWriter::start(
        store.clone(),
        settings.engine.intake_writers,
        settings.engine.intake_group_max,
        backlog.clone(),
        vec![
            processor.clone().recipient(),
            outward.hints.clone().recipient(),
        ],
    );
    StatusSynchronizer::new(Parts {
        store: store.clone(),
        metrics: metrics.clone(),
        backlog,
        capacity: settings.engine.queue_capacity,
        processor,
        monitor: outward.monitor.clone(),
        writer,
    })
}

fn start_dispatcher(
    store: &Store,
    mapper: &Addr<StatusMapper>,
    settings: &Arc<Settings>,
    metrics: &Arc<Metrics>,
    outward: &Outward,
    connected: &Connectors,
) -> Option<Addr<Dispatcher>> {
    if !settings.server.worker_enabled {
        return None;
    }
    let dispatch = DispatchContext::new(
        store.clone(),
        mapper.clone(),
        settings.clone(),
        metrics.clone(),
        connected.registry.clone(),
        // Its own commits reach subscribers here at once, and elsewhere through hints.
        vec![
            outward.ws.clone().recipient(),
            outward.hints.clone().recipient(),
        ],
    );
    Some(Dispatcher::new(dispatch).start())
}
