//! Serving a router on a TCP port so that no client can hold it: each connection has
//! [`ListenLimits::header_timeout`] to send a request's headers, handlers read bodies within
//! [`ListenLimits::body_timeout`] (they take the limits as an `Extension`), and at most
//! [`ListenLimits::max_connections`] connections are served at once (more wait in the kernel's
//! accept queue until one ends).
//!
//! Why not `axum::serve`: it sets no timer on hyper, so a client that opens a connection and
//! sends half a request line holds a task and a socket for ever, and it takes every connection
//! it is offered. The appservice port faces whatever can reach it, and the homeserver's
//! transactions must still be answered while others misbehave.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};

/// Time limits and the connection cap of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenLimits {
    /// How long a client has to send a request's headers once it is expected to.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The pause after a failed accept (out of file descriptors, a connection reset before it was
/// accepted), so descriptors can free up.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

impl Default for ListenLimits {
    fn default() -> Self {
        ListenLimits { header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(30), max_connections: 256 }
    }
}

/// Binds `addr` and serves `router` in the background under `limits` (also given to the router
/// as an `Extension`). Returns the bound address and the accepting task.
pub async fn serve(router: Router, addr: SocketAddr, limits: ListenLimits) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let router = router.layer(axum::Extension(limits));
    let task = tokio::spawn(accept(listener, router, limits));
    Ok((local, task))
}

async fn accept(listener: tokio::net::TcpListener, router: Router, limits: ListenLimits) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A slot first: while all are taken, new connections wait unaccepted.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine, and a pause lets descriptors free up.
                tracing::warn!(addr = ?listener.local_addr().ok(), "cannot accept a connection: {e}");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}
