//! The simulator's HTTP surface: CloudKit's endpoint (`/ckdatabase/api/client/{op}`), the MMCS
//! content host (`/_mmcs/{record}`), the anisette server and the simulator's own control
//! endpoint, as an axum router. The work is in [`crate::server`] and [`crate::assets`]; this is
//! the glue that moves it off the async runtime (encryption is CPU work).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};

use crate::server::Sim;

async fn endpoint(State(sim): State<Arc<Sim>>, Path(op): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let sim2 = sim.clone();
    match tokio::task::spawn_blocking(move || sim2.handle(&op, &headers, &body)).await {
        Ok(r) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /_sim/anisette`: the simulator playing an anisette server (a JSON object of headers).
async fn anisette(State(sim): State<Arc<Sim>>) -> Json<serde_json::Value> {
    Json(sim.anisette_headers())
}

/// `POST /_sim/release-later`: the simulator's own control endpoint (not CloudKit's), so a demo
/// or a test driving a separate simulator process can make the later messages arrive.
async fn release_later(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.release_later();
    tracing::info!(messages = sim.account.total - sim.account.history, revisions = sim.revisions().messages.len(), "later messages released");
    StatusCode::NO_CONTENT
}

/// `GET /_mmcs/{record}`: the simulator playing an MMCS content host.
async fn container(State(sim): State<Arc<Sim>>, Path(record): Path<String>, headers: HeaderMap) -> Response {
    let sim2 = sim.clone();
    match tokio::task::spawn_blocking(move || sim2.assets.serve(&sim2.account, &record, &headers)).await {
        Ok(r) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/_mmcs/{record}", get(container))
        .route("/ckdatabase/api/client/{*op}", post(endpoint))
        .route("/_sim/release-later", post(release_later))
        .route("/_sim/anisette", get(anisette))
        .with_state(sim)
}

/// Binds `addr` (port 0 allowed) and serves until the task is dropped. Returns the real address.
pub async fn spawn(sim: Arc<Sim>, addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(sim)).await {
            tracing::error!("simulator server stopped: {e}");
        }
    });
    Ok((local, handle))
}
