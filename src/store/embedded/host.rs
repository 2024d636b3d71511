//! The host side of the embedded cluster: the account PostgreSQL runs as (never root), the
//! commands we run and their output, the ephemeral cluster's watchdog, and private files.
//! It must never hand a test's stdout/stderr to a process that outlives the test, and never
//! let anyone but their owner read the private files and directories it creates.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{EmbeddedError, CLUSTER_OS_USER, REQUIRED_BINARIES, STEP_TIMEOUT};

/// How commands reach the account the cluster runs as: ourselves, or (as root) `postgres`.
#[derive(Debug)]
pub(super) struct RunAs {
    /// e.g. `runuser -u postgres --`; empty when we run the binaries directly.
    prefix: Vec<String>,
    /// uid and gid of the cluster's account, when it is not us.
    pub(super) owner: Option<(u32, u32)>,
}

impl RunAs {
    pub(super) fn detect() -> Result<Self, EmbeddedError> {
        let euid = match std::fs::metadata("/proc/self") {
            Ok(meta) => meta.uid(),
            Err(_) => id(&["-u"])?, // no procfs (macOS)
        };
        if euid != 0 {
            return Ok(Self {
                prefix: Vec::new(),
                owner: None,
            });
        }
        let user = CLUSTER_OS_USER;
        let no_user = |reason: &str| EmbeddedError::NoClusterUser {
            user: user.into(),
            reason: reason.into(),
        };
        let uid = id(&["-u", user]).map_err(|_| no_user("no such user exists"))?;
        let gid = id(&["-g", user]).map_err(|_| no_user("its group could not be read"))?;
        let prefix = if find_on_path("runuser").is_some() {
            format!("runuser -u {user} --")
        } else if find_on_path("setpriv").is_some() {
            format!("setpriv --reuid={user} --regid={user} --init-groups")
        } else {
            return Err(no_user(
                "neither `runuser` nor `setpriv` is there to switch to it",
            ));
        };
        let prefix = prefix.split(' ').map(String::from).collect();
        Ok(Self {
            prefix,
            owner: Some((uid, gid)),
        })
    }

    pub(super) fn argv(&self, program: &Path) -> Vec<OsString> {
        let prefix = self.prefix.iter().map(OsString::from);
        prefix.chain([program.as_os_str().to_owned()]).collect()
    }

    /// `program` as the cluster's account, from `/` (our cwd may be closed to that account).
    pub(super) fn command(&self, program: &Path) -> Command {
        let argv = self.argv(program);
        let mut cmd = Command::new(&argv[0]); // never empty: it ends with `program`
        cmd.args(&argv[1..]).current_dir("/").stdin(Stdio::null());
        cmd
    }

    pub(super) fn chown(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some((uid, gid)) = self.owner {
            let chown = std::os::unix::fs::chown(path, Some(uid), Some(gid));
            chown.map_err(io_ctx(format!("chown {}", path.display())))?;
        }
        Ok(())
    }

    /// Can the cluster's account traverse all the way down into `dir`?
    pub(super) async fn can_reach(&self, dir: &Path) -> Result<bool, EmbeddedError> {
        let mut cmd = self.command(Path::new("test"));
        cmd.arg("-x").arg(dir);
        Ok(run("reachability check", cmd).await?.status.success())
    }
}

/// A detached `sh` that waits for this process to disappear, then stops the cluster with
/// `pg_ctl` (argv, as the cluster's account) and removes `dirs`. It runs as us so that it may
/// still switch accounts as root; in a session of its own, so a Ctrl-C to the tests does not
/// reach it; with stdio on /dev/null, as cargo waits until inherited pipes close.
pub(super) fn spawn_watchdog(
    pg_ctl: &[OsString],
    data_dir: &Path,
    dirs: &[&Path; 2],
) -> Result<(), EmbeddedError> {
    const SCRIPT: &str = r#"owner=$1 data=$2 dir1=$3 dir2=$4; shift 4
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
"$@" -D "$data" stop -m immediate -w -t 60
rm -rf -- "$dir1" "$dir2""#;
    let setsid = find_on_path("setsid");
    let mut cmd = Command::new(setsid.as_deref().unwrap_or(Path::new("sh")));
    match setsid {
        Some(_) => cmd.arg("sh"),
        None => cmd.process_group(0), // no setsid(1) (macOS): at least out of the tty's group
    };
    cmd.args([
        "-c",
        SCRIPT,
        "statsync-pg-watchdog",
        &std::process::id().to_string(),
    ]);
    cmd.arg(data_dir).args(dirs).args(pg_ctl).current_dir("/");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Never waited for: it outlives us by design.
    cmd.spawn()
        .map_err(io_ctx("spawning the embedded PostgreSQL watchdog"))?;
    Ok(())
}

/// Run to completion within `STEP_TIMEOUT`, capturing stdout and stderr.
pub(super) async fn run(step: &str, cmd: Command) -> Result<Output, EmbeddedError> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(STEP_TIMEOUT, cmd.output()).await {
        Ok(out) => out.map_err(io_ctx(step)),
        Err(_) => Err(EmbeddedError::Timeout(format!(
            "{step} did not finish within {STEP_TIMEOUT:?}"
        ))),
    }
}

/// `run`, and a failure exit status is an error carrying the output.
pub(super) async fn run_ok(step: &str, cmd: Command) -> Result<Output, EmbeddedError> {
    let out = run(step, cmd).await?;
    if !out.status.success() {
        return Err(command_error(step, &out, ""));
    }
    Ok(out)
}

pub(super) fn command_error(step: &str, out: &Output, extra: &str) -> EmbeddedError {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let parts = [stdout.trim(), stderr.trim(), extra.trim()];
    let output = parts
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    EmbeddedError::Command {
        step: step.into(),
        status: out.status.to_string(),
        output,
    }
}

/// `id <args>` as a number: our euid (`-u`) or a user's uid/gid. Synchronous: it is quick.
pub(super) fn id(args: &[&str]) -> Result<u32, EmbeddedError> {
    let out = Command::new("id")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match text.parse() {
        Ok(id) if out.status.success() => Ok(id),
        _ => Err(command_error(&format!("id {}", args.join(" ")), &out, "")),
    }
}

pub(super) fn has_binaries(dir: &Path) -> bool {
    REQUIRED_BINARIES
        .iter()
        .all(|name| is_executable(&dir.join(name)))
}

pub(super) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

pub(super) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Create `dir` (not its parents) as 0700 unless it exists; an existing one keeps its mode.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), EmbeddedError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_ctx(format!("creating {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Write a file readable only by its owner.
pub(super) fn write_private(path: &Path, contents: &str) -> Result<(), EmbeddedError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    let mut file = options.open(path).map_err(io_ctx(path.display()))?;
    io::Write::write_all(&mut file, contents.as_bytes()).map_err(io_ctx(path.display()))
}

/// The last `count` lines of a log file (or why it could not be read).
pub(super) fn tail(path: &Path, count: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// 12 hex digits of FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
pub(super) fn short_hash(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:012x}", hash >> 16)
}

pub(super) fn io_ctx(what: impl fmt::Display) -> impl FnOnce(io::Error) -> EmbeddedError {
    move |e| EmbeddedError::Io(io::Error::new(e.kind(), format!("{what}: {e}")))
}
