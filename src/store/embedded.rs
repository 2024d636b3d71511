//! Embedded PostgreSQL: owns a private cluster run with the machine's own binaries — finding
//! them, `initdb` on first use, starting it on a free 127.0.0.1 port, waiting until it is
//! ready, stopping it, and the watchdog that tears down ephemeral (test) clusters.
//! It must never run the server as root, never listen beyond 127.0.0.1, never loosen the
//! permissions of directories it did not create, never turn durability off for the service's
//! own cluster, and never create databases (callers connect to `postgres` for that).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;

mod host;

use host::{
    command_error, create_private_dir, find_on_path, has_binaries, io_ctx, run, run_ok, short_hash,
    spawn_watchdog, tail, write_private, RunAs,
};

/// Overrides where `initdb`, `pg_ctl`, `postgres` and `pg_isready` are looked for.
pub const BIN_DIR_ENV: &str = "STATSYNC_PG_BIN_DIR";
const REQUIRED_BINARIES: [&str; 4] = ["initdb", "pg_ctl", "postgres", "pg_isready"];
/// The cluster's superuser role; `url()` logs in as it.
const SUPERUSER: &str = "statsync";
/// The unprivileged OS account the server runs as when we are root.
const CLUSTER_OS_USER: &str = "postgres";
const PASSWORD_FILE: &str = "password";
/// Written under `root` when the cluster had to live elsewhere; holds that directory.
const LOCATION_FILE: &str = "location";
/// Homes of relocated clusters: the service's must survive tmp cleaners, tests' need not.
const RELOCATED_DURABLE: &str = "/var/lib/statsync";
const RELOCATED_EPHEMERAL: &str = "/var/tmp";
/// Upper bound for any one command (initdb on a slow CI disk is the long one).
const STEP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the server gets to accept connections (`pg_ctl -t`, then our own polling).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const START_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_isready) were not found; looked in \
         {searched}. Install them (Debian/Ubuntu: `apt-get install -y postgresql`; macOS: \
         `brew install postgresql@15`), point {BIN_DIR_ENV} at their bin directory, or set \
         DATABASE_URL to use an existing PostgreSQL server."
    )]
    NotInstalled { searched: String },
    #[error(
        "running as root, so PostgreSQL must run as the unprivileged `{user}` system user, but \
         {reason}. Create it (installing the postgresql package does, or `useradd --system \
         --home-dir /var/lib/postgresql {user}`), run statsync as a non-root user, or set \
         DATABASE_URL to use an existing PostgreSQL server."
    )]
    NoClusterUser { user: String, reason: String },
    #[error("{step} failed ({status}):\n{output}")]
    Command {
        step: String,
        status: String,
        output: String,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("embedded PostgreSQL state at {} is unusable: {reason}", path.display())]
    BadState { path: PathBuf, reason: String },
}

/// A private PostgreSQL cluster on 127.0.0.1, started by us or reused from an earlier run.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    run_as: RunAs,
    data_dir: PathBuf,
    port: u16,
    password: Password,
    /// We launched the server (rather than found it running), so `Drop` stops it.
    started_here: bool,
    stopped: AtomicBool,
}

struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl EmbeddedPostgres {
    /// Find initdb + pg_ctl + postgres: `$STATSYNC_PG_BIN_DIR`, else PATH (symlinks resolved
    /// to the real bin dir), else the newest /usr/lib/postgresql/*/bin (or Homebrew keg).
    pub fn locate_binaries() -> Result<PathBuf, EmbeddedError> {
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV).map(PathBuf::from) {
            // A wrong override fails loudly rather than silently picking another version.
            let searched = format!("{BIN_DIR_ENV}={}", dir.display());
            return has_binaries(&dir)
                .then_some(dir)
                .ok_or(EmbeddedError::NotInstalled { searched });
        }
        for name in ["pg_ctl", "initdb"] {
            let real = find_on_path(name).and_then(|p| std::fs::canonicalize(p).ok());
            if let Some(dir) = real
                .as_deref()
                .and_then(Path::parent)
                .filter(|d| has_binaries(d))
            {
                return Ok(dir.to_path_buf());
            }
        }
        let mut searched = vec!["PATH".to_owned()];
        let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
        let homes = [
            ("/usr/lib/postgresql", ""),
            ("/opt/homebrew/opt", "postgresql@"),
            ("/usr/local/opt", "postgresql@"),
        ];
        for (parent, prefix) in homes {
            searched.push(format!("{parent}/{prefix}*/bin"));
            for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let version = name.strip_prefix(prefix).unwrap_or("x").split('.');
                let version: Option<Vec<u32>> = version.map(|part| part.parse().ok()).collect();
                let bin = entry.path().join("bin");
                if let Some(version) = version.filter(|_| has_binaries(&bin)) {
                    found.push((version, bin));
                }
            }
        }
        let newest = found.into_iter().max().map(|(_, bin)| bin);
        newest.ok_or_else(|| EmbeddedError::NotInstalled {
            searched: searched.join(", "),
        })
    }

    /// Start (initdb on first use, then reuse) the durable cluster kept under `root`; a server
    /// still running there from an earlier run is reused as it is.
    pub async fn start(root: &Path) -> Result<Self, EmbeddedError> {
        Self::start_with(root, false).await
    }

    /// Same, but ephemeral and tuned for speed: a watchdog stops the server and removes its
    /// directories once this process is gone, however it ends (even SIGKILL). For tests.
    pub async fn start_ephemeral(root: &Path) -> Result<Self, EmbeddedError> {
        Self::start_with(root, true).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory (`PGDATA`); its parent holds the password file.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `postgres://statsync:<password>@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        let (password, port) = (&self.password.0, self.port);
        format!("postgres://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}")
    }

    /// `pg_ctl stop -m fast`, waiting until the server and all its processes are gone.
    /// Idempotent; also stops a server this handle merely reused.
    pub async fn stop(&self) -> Result<(), EmbeddedError> {
        if self.running_port().await?.is_some() {
            let mut cmd = self.pg_ctl();
            let timeout = READY_TIMEOUT.as_secs().to_string();
            cmd.args(["stop", "-m", "fast", "-w", "-t", &timeout]);
            let out = run("pg_ctl stop", cmd).await?;
            // It fails if the server went away on its own meanwhile; only a live one is an error.
            if !out.status.success() && self.running_port().await?.is_some() {
                return Err(command_error("pg_ctl stop", &out, ""));
            }
        }
        self.stopped.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn start_with(root: &Path, ephemeral: bool) -> Result<Self, EmbeddedError> {
        let bin_dir = Self::locate_binaries()?;
        let run_as = RunAs::detect()?;
        let (root, base) = resolve_layout(root, &run_as, ephemeral).await?;
        let data_dir = base.join("data");
        if ephemeral {
            // Before anything can fail half-way: even a cluster that never came up is removed.
            spawn_watchdog(
                &run_as.argv(&bin_dir.join("pg_ctl")),
                &data_dir,
                &[&base, &root],
            )?;
        }
        let initialized = data_dir.join("PG_VERSION").is_file();
        let password = Password(load_or_create_password(&base, initialized)?);
        let stopped = AtomicBool::new(false);
        let mut pg = Self {
            bin_dir,
            run_as,
            data_dir,
            port: 0,
            password,
            started_here: false,
            stopped,
        };
        let dir = pg.data_dir.display().to_string();
        if !initialized {
            let began = Instant::now();
            pg.initdb(&base, ephemeral).await?;
            tracing::info!(
                data_dir = dir,
                ms = began.elapsed().as_millis(),
                "initialized embedded PostgreSQL"
            );
        }
        if let Some(port) = pg.running_port().await? {
            pg.port = port;
            pg.wait_ready().await?;
            tracing::info!(data_dir = dir, port, "reusing running embedded PostgreSQL");
            return Ok(pg);
        }
        let began = Instant::now();
        pg.launch().await?;
        pg.started_here = true;
        pg.wait_ready().await?;
        let (port, ms) = (pg.port, began.elapsed().as_millis());
        tracing::info!(data_dir = dir, port, ms, "started embedded PostgreSQL");
        Ok(pg)
    }

    async fn initdb(&self, base: &Path, ephemeral: bool) -> Result<(), EmbeddedError> {
        // initdb runs as the cluster's account and reads the password from a file, so the file
        // goes in the cluster's own 0700 directory, owned by that account, and is always removed.
        let pwfile = base.join(".initdb-pwfile");
        write_private(&pwfile, &self.password.0)?;
        self.run_as.chown(&pwfile)?;
        let mut cmd = self.run_as.command(&self.bin_dir.join("initdb"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg(format!("--pwfile={}", pwfile.display()));
        cmd.args(["-U", SUPERUSER, "--auth=scram-sha-256"]);
        cmd.args(["--encoding=UTF8", "--locale=C"]);
        if ephemeral {
            cmd.arg("--no-sync");
        }
        let result = run_ok("initdb", cmd).await;
        std::fs::remove_file(&pwfile).map_err(io_ctx("removing initdb's pwfile"))?;
        result?;
        let mut settings = "\n# statsync: private, loopback only\nlisten_addresses = '127.0.0.1'\n\
                            unix_socket_directories = ''\n"
            .to_owned();
        if ephemeral {
            // Test clusters are thrown away, so durability is traded for speed. Never the service's.
            settings += "max_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
        }
        let conf = self.data_dir.join("postgresql.conf");
        let append = std::fs::OpenOptions::new().append(true).open(&conf);
        let mut file = append.map_err(io_ctx(conf.display()))?;
        io::Write::write_all(&mut file, settings.as_bytes()).map_err(io_ctx(conf.display()))
    }

    /// `pg_ctl start` on a freshly picked free port, retrying if someone takes the port first.
    async fn launch(&mut self) -> Result<(), EmbeddedError> {
        let log = self.data_dir.join("postgres.log");
        for attempt in 1.. {
            self.port = std::net::TcpListener::bind(("127.0.0.1", 0))?
                .local_addr()?
                .port();
            let out = run("pg_ctl start", self.pg_ctl_start(&log)).await?;
            if out.status.success() {
                break;
            }
            let log_tail = tail(&log, 20);
            if attempt >= START_ATTEMPTS || !log_tail.contains("could not bind") {
                let log_tail = format!("--- end of {} ---\n{log_tail}", log.display());
                return Err(command_error("pg_ctl start", &out, &log_tail));
            }
            tracing::warn!(
                port = self.port,
                "embedded PostgreSQL's port was taken; retrying"
            );
        }
        Ok(())
    }

    /// `pg_ctl start` on `self.port`, logging to `log`, waiting until it accepts connections.
    fn pg_ctl_start(&self, log: &Path) -> Command {
        let mut cmd = self.pg_ctl();
        let timeout = READY_TIMEOUT.as_secs().to_string();
        cmd.args([
            "start",
            "-w",
            "-t",
            &timeout,
            "-o",
            &format!("-p {}", self.port),
        ]);
        cmd.arg("-l").arg(log);
        cmd
    }

    /// Starts again, on the same port, a cluster that [`stop`](Self::stop) stopped: the
    /// database comes back where its clients expect it (fault tests). Idempotent.
    pub async fn restart(&self) -> Result<(), EmbeddedError> {
        if self.running_port().await?.is_none() {
            let log = self.data_dir.join("postgres.log");
            let out = run("pg_ctl start", self.pg_ctl_start(&log)).await?;
            if !out.status.success() {
                let log_tail = format!("--- end of {} ---\n{}", log.display(), tail(&log, 20));
                return Err(command_error("pg_ctl start", &out, &log_tail));
            }
        }
        self.wait_ready().await?;
        self.stopped.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// The port of the server running on our data directory, if one is.
    async fn running_port(&self) -> Result<Option<u16>, EmbeddedError> {
        let mut cmd = self.pg_ctl();
        cmd.arg("status");
        let out = run("pg_ctl status", cmd).await?;
        match out.status.code() {
            Some(0) => {}
            Some(3) => return Ok(None),
            Some(4) if !self.data_dir.exists() => return Ok(None),
            _ => return Err(command_error("pg_ctl status", &out, "")),
        }
        let path = self.data_dir.join("postmaster.pid");
        let contents = std::fs::read_to_string(&path).map_err(io_ctx(path.display()))?;
        // postmaster.pid: pid, data dir, start time, port, socket dir, address, shm key, status.
        match contents
            .lines()
            .nth(3)
            .and_then(|line| line.trim().parse().ok())
        {
            Some(port) => Ok(Some(port)),
            None => Err(EmbeddedError::BadState {
                path,
                reason: "no port on line 4".into(),
            }),
        }
    }

    /// Poll `pg_isready` until the server accepts connections on 127.0.0.1, with a deadline.
    async fn wait_ready(&self) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut cmd = Command::new(self.bin_dir.join("pg_isready"));
            let port = self.port.to_string();
            cmd.args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "2",
                "-d",
                "postgres",
            ]);
            cmd.args(["-U", SUPERUSER]);
            let out = run("pg_isready", cmd).await;
            if out.is_ok_and(|out| out.status.success()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let what = format!(
                    "PostgreSQL on 127.0.0.1:{} not ready after {READY_TIMEOUT:?}",
                    self.port
                );
                return Err(EmbeddedError::Timeout(what));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.run_as.command(&self.bin_dir.join("pg_ctl"));
        cmd.arg("-D").arg(&self.data_dir);
        cmd
    }
}

impl Drop for EmbeddedPostgres {
    /// Best effort: a server we started and nobody stopped is stopped synchronously.
    fn drop(&mut self) {
        if self.started_here && !self.stopped.load(Ordering::SeqCst) {
            let mut cmd = self.pg_ctl();
            cmd.args(["stop", "-m", "fast", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Err(error) = cmd.status() {
                tracing::warn!(%error, data_dir = %self.data_dir.display(), "could not stop embedded PostgreSQL");
            }
        }
    }
}

/// Create `root` and decide where the cluster lives: in `root` itself or — when we are root and
/// the `postgres` account cannot traverse to `root` (a 0700 `mktemp -d` checkout, /root) — in a
/// directory of its own recorded in `root/location`. Returns canonical `root` and that directory.
async fn resolve_layout(
    root: &Path,
    run_as: &RunAs,
    ephemeral: bool,
) -> Result<(PathBuf, PathBuf), EmbeddedError> {
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(io_ctx(format!("creating {}", parent.display())))?;
    }
    create_private_dir(root)?;
    let root = std::fs::canonicalize(root)?;
    let location = root.join(LOCATION_FILE);
    let base = if location.is_file() {
        PathBuf::from(
            std::fs::read_to_string(&location)
                .map_err(io_ctx(location.display()))?
                .trim(),
        )
    } else if run_as.owner.is_none()
        || root.join("data").exists()
        || run_as
            .can_reach(root.parent().unwrap_or(Path::new("/")))
            .await?
    {
        root.clone()
    } else {
        let home = Path::new(if ephemeral {
            RELOCATED_EPHEMERAL
        } else {
            RELOCATED_DURABLE
        });
        std::fs::create_dir_all(home).map_err(io_ctx(format!("creating {}", home.display())))?;
        let base = home.join(format!("statsync-pg-{}", short_hash(&root)));
        write_private(&location, &base.display().to_string())?;
        let (requested, location) = (root.display(), base.display());
        tracing::info!(%requested, %location, "the postgres user cannot reach the requested directory; the cluster lives at `location`");
        base
    };
    create_private_dir(&base)?;
    run_as.chown(&base)?;
    Ok((root, base))
}

/// The cluster password: read from `base/password`, or generated for a new cluster.
fn load_or_create_password(base: &Path, initialized: bool) -> Result<String, EmbeddedError> {
    let path = base.join(PASSWORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(password) if !password.trim().is_empty() => Ok(password.trim().to_owned()),
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_ctx(path.display())(e)),
        _ if initialized => {
            let reason = "the cluster exists but its password file is missing or empty; remove the cluster to start afresh";
            Err(EmbeddedError::BadState {
                path,
                reason: reason.into(),
            })
        }
        _ => {
            let password: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            write_private(&path, &password)?;
            Ok(password)
        }
    }
}
