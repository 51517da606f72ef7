//! The daemons' web ports: read-only pages, their JSON twins and `/metrics`, over HTTP/1.1.
//!
//! Every daemon (namenode, datanode, jobtracker, worker) serves one, at the address
//! `cluster.toml` gives it (`crate::config`'s web addresses). The routes are axum's; each
//! accepted connection goes through [`crate::listener::serve`] like every other port (connection
//! limit, handshake hook, graceful shutdown) and is then handed to hyper's HTTP/1 connection
//! server, which bounds what a client may send:
//!
//! - a request head larger than [`MAX_HEAD_BYTES`] is refused (hyper answers 431 and closes);
//! - a connection that does not send a whole request head within the read timeout is closed,
//!   whether it is new, idle between requests, or dribbling bytes (hyper's header read timeout,
//!   which runs from the moment it waits for a head);
//! - a malformed request line gets a 400 and the connection is closed.
//!
//! The pages are read-only by design: every route is a GET and none changes anything, so
//! serving them without authentication exposes what `dfs report` and `mrjob status` show and
//! nothing more. A route that changes state must not be added here. A page of a user's own
//! data (a task's logs) asks for a login ([`session`]): a signed cookie, since a browser
//! cannot run the cluster's handshake.
//!
//! - [`page`]: the common HTML frame (inline CSS, no external asset) and formatting helpers.
//! - [`session`]: `/login`, the session cookie, and the [`session::Viewer`] a request acts
//!   for (`dr.who` without a login).

pub mod page;
pub mod session;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::auth::Gate;
use crate::error::{Error, Result};
use crate::listener::{Conn, Limits, Shutdown};

/// Largest request head (request line plus headers) a web port reads; browsers send a few KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Content type of what prometheus-client writes: the OpenMetrics text format (Prometheus's
/// text format with `_total` counters and a closing `# EOF`), which Prometheus scrapes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` for the web pages of `what` (a daemon's name, for the error).
pub async fn bind(what: &str, addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("binding the {what} web port {addr}"), e))
}

/// Binds `addr` and serves `router` (plus `/metrics`) on it until `shutdown` fires: the web
/// port of one daemon. Binding fails at once, so a port in use stops the daemon's start.
pub async fn start(
    what: &'static str,
    addr: &str,
    limits: Limits,
    shutdown: Shutdown,
    router: Router,
) -> Result<JoinHandle<()>> {
    let listener = bind(what, addr).await?;
    tracing::info!("{what}: web pages and /metrics on http://{addr}/");
    Ok(tokio::spawn(serve(
        listener, what, limits, shutdown, router,
    )))
}

/// Serves `router`, with `/metrics` added, on `listener` through [`crate::listener::serve`].
pub async fn serve(
    listener: TcpListener,
    name: &'static str,
    limits: Limits,
    shutdown: Shutdown,
    router: Router,
) {
    let router = router.route("/metrics", get(metrics));
    let read_timeout = limits.read_timeout;
    let stopping = shutdown.clone();
    crate::listener::serve(
        listener,
        name,
        limits,
        // Browsers cannot do the cluster's handshake: the web ports are open, and read-only
        // (every route is a GET; the namenode's pages act as the unprivileged web user).
        Gate::Open,
        shutdown,
        move |stream, _conn: Conn| {
            serve_connection(stream, stopping.clone(), read_timeout, router.clone())
        },
    )
    .await
}

async fn serve_connection(
    stream: TcpStream,
    mut stopping: Shutdown,
    read_timeout: Duration,
    router: Router,
) -> std::result::Result<(), hyper::Error> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let service = TowerToHyperService::new(router);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => result,
        () = stopping.recv() => {
            // Finish the request in hand, then close, as every other port does.
            served.as_mut().graceful_shutdown();
            served.await
        }
    }
}

async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        crate::metrics::render(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::listener::ShutdownTrigger;

    async fn server(read_timeout: Duration) -> (std::net::SocketAddr, ShutdownTrigger) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 8,
            idle_timeout: Duration::from_secs(60),
            read_timeout,
            shutdown_grace: Duration::from_secs(1),
            handshake_timeout: read_timeout,
        };
        let stop = ShutdownTrigger::new();
        let router = Router::new().route("/", get(|| async { "hello" }));
        tokio::spawn(serve(listener, "test", limits, stop.subscribe(), router));
        (addr, stop)
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    // Checks G7 on a web port: bad requests get an error status and a closed connection,
    // a silent connection is closed after the read timeout, and the server goes on serving.
    #[tokio::test]
    async fn bad_requests_and_silent_connections_are_refused_and_closed() {
        let (addr, _stop) = server(Duration::from_millis(300)).await;
        let ok = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("hello"),
            "{ok}"
        );
        let bad = exchange(addr, b"NOT HTTP AT ALL\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        let mut huge = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        huge.resize(MAX_HEAD_BYTES * 4, b'a');
        let big = exchange(addr, &huge).await;
        assert!(big.is_empty() || big.starts_with("HTTP/1.1 431"), "{big}");
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("a silent connection is closed")
            .unwrap_or(0);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        let _ = n;
        let metrics = exchange(addr, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics.contains("application/openmetrics-text"),
            "{metrics}"
        );
    }
}
