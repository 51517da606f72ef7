//! The shutdown signal every server and connection task listens to (after mini-redis's
//! `Shutdown`), and the daemons' SIGTERM/SIGINT handling.
//!
//! A daemon makes one [`ShutdownTrigger`], hands a [`Shutdown`] to each of its servers, and
//! pulls the trigger when [`terminate_requested`] returns. Servers then stop accepting and let
//! their open connections finish (see [`super::serve`]).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::SHUTDOWN_GRACE;

/// How long after the first signal the process exits whatever it is still doing: the servers'
/// grace period plus a margin for the daemon to wind down after its servers did.
pub const HARD_DEADLINE: Duration = Duration::from_secs(SHUTDOWN_GRACE.as_secs() + 3);

/// How long a daemon's runtime waits for blocking work (a disk read, a checksum pass) once
/// its tasks ended; past it, the process exits without it.
pub const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

/// Pulls the shutdown signal of every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// The listening side of a [`ShutdownTrigger`]; cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    /// A trigger not pulled yet.
    pub fn new() -> ShutdownTrigger {
        ShutdownTrigger {
            tx: watch::channel(false).0,
        }
    }

    /// A signal that fires when this trigger is pulled.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }

    /// Tells every subscriber to shut down (once is enough; later calls do nothing new).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        ShutdownTrigger::new()
    }
}

impl Shutdown {
    /// A signal that never fires, for servers that run until the process ends (tests).
    pub fn never() -> Shutdown {
        ShutdownTrigger::new().subscribe()
    }

    /// Whether shutdown has been requested.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until shutdown is requested. A trigger dropped without being pulled never fires:
    /// dropping it is not a request to stop.
    pub async fn recv(&mut self) {
        if self.rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits for SIGTERM or SIGINT (how `dfs cluster stop`, `mrjob cluster stop` and systemd stop a
/// daemon), then returns so the daemon can shut down gracefully. From then on a second signal
/// exits at once, and so does reaching [`HARD_DEADLINE`]: a stuck shutdown never outlives
/// the stopper's patience (`cluster stop` sends SIGKILL after 10 s, systemd after 30 s).
pub async fn terminate_requested() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the signals keep their default action (the process dies at once),
        // which is how daemons stopped before graceful shutdown existed.
        tracing::warn!("cannot install the SIGTERM/SIGINT handlers; signals end the process");
        return std::future::pending().await;
    };
    let first = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        "{first}: shutting down (no new connections; open ones get {} s; a second signal \
         exits at once)",
        SHUTDOWN_GRACE.as_secs()
    );
    tokio::spawn(async move {
        let code = tokio::select! {
            _ = term.recv() => 128 + 15,
            _ = int.recv() => 128 + 2,
            () = tokio::time::sleep(HARD_DEADLINE) => {
                tracing::error!("shutdown still unfinished after {HARD_DEADLINE:?}; exiting");
                1
            }
        };
        std::process::exit(code);
    });
}

/// Runs a daemon's main future on `runtime`, then shuts the runtime down without waiting more
/// than [`RUNTIME_SHUTDOWN`] for blocking work: dropping a runtime would wait for every
/// `spawn_blocking` task however long it takes.
pub fn run_daemon<F: Future>(runtime: tokio::runtime::Runtime, daemon: F) -> F::Output {
    let out = runtime.block_on(daemon);
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    out
}
