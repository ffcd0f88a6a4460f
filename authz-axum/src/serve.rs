//! Serving like production: what `axum::serve` leaves out, with hyper's and tower-http's own
//! building blocks.
//!
//! | concern | default | how |
//! |---|---|---|
//! | a client that sends its request head slowly, or idles on a kept-alive connection | closed after [`ServeConfig::header_read_timeout`] (10 s) | hyper's `header_read_timeout`, which runs whenever the server waits for a request head — the first one and every next one on a kept-alive connection |
//! | a request whose handling takes too long | 408 after [`ServeConfig::request_timeout`] (30 s) | `tower_http::timeout::TimeoutLayer` |
//! | too many connections (1,100 idle connections used to exhaust 1,024 file descriptors) | at most [`ServeConfig::max_connections`] (4,096, and never more than the descriptor limit allows); the soft `RLIMIT_NOFILE` is raised to the hard limit at start | a semaphore around `accept`: at the cap, new connections wait in the kernel's backlog instead of failing |
//! | SIGTERM or Ctrl-C | stop accepting, let in-flight requests finish within [`ServeConfig::shutdown_grace`] (20 s), then return | `hyper_util::server::graceful` |
//!
//! ```no_run
//! use authz_axum::serve::{ServeConfig, serve, shutdown_signal};
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let report = serve(listener, app, ServeConfig::default(), shutdown_signal()).await?;
//! // Flush whatever must outlive the last request here (API-key use times, logs…).
//! assert_eq!(report.unfinished, 0);
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutLayer;

/// How [`serve`] treats connections and shutdown. Every default is safe for an internet-facing
/// service; each field says what it bounds.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Longest wait for a complete request head, and longest idle time of a kept-alive
    /// connection between two requests (default 10 s). A half-sent request is closed after it.
    pub header_read_timeout: Duration,
    /// Longest time a request may take, body and handler included; then 408 Request Timeout
    /// (default 30 s).
    pub request_timeout: Duration,
    /// Most connections served at once (default 4,096). Capped further so that the process
    /// keeps 64 descriptors for everything else (database, key fetches, logs).
    pub max_connections: usize,
    /// How long in-flight requests may run after a shutdown signal (default 20 s).
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// How a [`serve`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// Connections still open when the shutdown grace ran out (0: everything drained).
    pub unfinished: usize,
    /// The connection cap that was in force.
    pub max_connections: usize,
}

/// Completes on SIGTERM (Unix) or Ctrl-C, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Raises the soft descriptor limit to the hard one and returns the connection cap that fits.
fn connection_cap(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or raise the file descriptor limit");
                return wanted.max(1);
            }
        };
        let fits = limit.saturating_sub(64).max(1);
        let cap = (wanted as u64).min(fits).max(1) as usize;
        if cap < wanted {
            tracing::warn!(
                wanted,
                cap,
                descriptor_limit = limit,
                "connection cap lowered to fit the file descriptor limit"
            );
        }
        cap
    }
    #[cfg(not(unix))]
    {
        wanted.max(1)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains (see the module docs).
/// Handlers can extract `ConnectInfo<SocketAddr>` (the client's address).
///
/// # Errors
/// Only a failure to read the listener's address; `accept` errors are logged and retried.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: F,
) -> std::io::Result<ServeReport>
where
    F: Future<Output = ()> + Send,
{
    let local = listener.local_addr()?;
    let max_connections = connection_cap(config.max_connections);
    let permits = Arc::new(Semaphore::new(max_connections));
    // `with_state(())` turns every handler into a route once, with its layers (the
    // `AuthLayer` among them) applied once — as `axum::serve` does through
    // `into_make_service`; a router called as it is would do that on every request.
    let app: Router = app
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .with_state(());
    let graceful = GracefulShutdown::new();
    tracing::debug!(%local, max_connections, "serving");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req.map(Body::new)
            })
            .map_err(|e: Infallible| match e {});
        let watcher = graceful.watcher();
        let header_read_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            // hyper's header timer starts once the protocol is known (HTTP/1 or HTTP/2): a
            // client that connects and sends nothing is bounded here.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(header_read_timeout, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => {
                    drop(permit);
                    return;
                }
            }
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            // HTTP/2 has no head to wait for: ping an idle peer and drop it if it stops
            // answering (a live HTTP/2 client may keep its connection; the cap bounds them).
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(header_read_timeout))
                .keep_alive_timeout(header_read_timeout);
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let open = max_connections - permits.available_permits();
    tracing::info!(
        open_connections = open,
        grace_s = config.shutdown_grace.as_secs(),
        "draining"
    );
    let unfinished = tokio::select! {
        _ = graceful.shutdown() => 0,
        _ = tokio::time::sleep(config.shutdown_grace) => {
            let left = max_connections - permits.available_permits();
            // The connections still open end when the runtime that runs them stops.
            tracing::warn!(unfinished = left, "shutdown grace over; closing what is left");
            left
        }
    };
    Ok(ServeReport {
        unfinished,
        max_connections,
    })
}
