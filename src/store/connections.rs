//! Where pooled connections live: every connection is opened and driven on a small
//! runtime of the store's own, never on the runtime of whoever first needed it.
//!
//! deadpool's default spawns a connection's task on the caller's runtime. An HTTP worker
//! that opened one took it down when the server stopped, while the connection was still
//! in the pool: a graceful stop then lost outcomes the dispatcher was saving ("connection
//! closed"). Here a connection lasts as long as the pool, whoever asked for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use deadpool_postgres::Connect;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, Connection, NoTls, Socket};

/// Threads driving the connections' sockets (they only move bytes), each a
/// single-threaded runtime; connections are dealt out among them in turn.
const THREADS: usize = 2;

/// One thread and its runtime, which ends (with the connections on it) when this is
/// dropped.
struct Driver {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Driver {
    fn start(n: usize) -> std::io::Result<Driver> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("statsync-db-{n}"))
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Driver {
            handle,
            _stop: stop,
        })
    }
}

/// deadpool's `Connect`, opening each connection on the store's own threads.
pub struct OnOwnRuntime {
    drivers: Vec<Driver>,
    next: AtomicUsize,
    closing: Arc<AtomicBool>,
}

impl OnOwnRuntime {
    pub fn new(closing: Arc<AtomicBool>) -> std::io::Result<Self> {
        Ok(OnOwnRuntime {
            drivers: (0..THREADS).map(Driver::start).collect::<Result<_, _>>()?,
            next: AtomicUsize::new(0),
            closing,
        })
    }
}

type Connected<'a> = Pin<
    Box<dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>> + Send + 'a>,
>;

impl Connect for OnOwnRuntime {
    fn connect(&self, config: &Config) -> Connected<'_> {
        let config = config.clone();
        let closing = self.closing.clone();
        let (tx, rx) = oneshot::channel();
        let driver = &self.drivers[self.next.fetch_add(1, Ordering::Relaxed) % self.drivers.len()];
        // The socket belongs to the runtime that opened it: open it there too.
        let task = driver.handle.spawn({
            let (config, closing) = (config.clone(), closing.clone());
            async move {
                match config.connect(NoTls).await {
                    Ok((client, connection)) => {
                        if tx.send(Ok(client)).is_ok() {
                            drive(connection, &closing).await;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            }
        });
        Box::pin(async move {
            match rx.await {
                Ok(connected) => connected.map(|client| (client, task)),
                // Only while the pool itself is being dropped (its threads are ending):
                // connect here, as deadpool would.
                Err(_) => {
                    let (client, connection) = config.connect(NoTls).await?;
                    let task = tokio::spawn(async move { drive(connection, &closing).await });
                    Ok((client, task))
                }
            }
        })
    }
}

async fn drive(
    connection: Connection<Socket, tokio_postgres::tls::NoTlsStream>,
    closing: &AtomicBool,
) {
    if let Err(e) = connection.await {
        // A connection still in use while the database stops is expected at shutdown.
        if closing.load(Ordering::Relaxed) {
            tracing::debug!(target: "deadpool.postgres", "Connection error: {e}");
        } else {
            tracing::warn!(target: "deadpool.postgres", "Connection error: {e}");
        }
    }
}
