//! Prometheus metrics of a running bridge, served as `GET /metrics` on an address of their own
//! when the config names one (`matrix.metrics_listen`).
//!
//! Why a listener of its own: the appservice port must answer the homeserver whatever else
//! reaches it, and a scraper (no `hs_token`: Prometheus has none) has no business there; an
//! operator can also bind metrics to another interface than the appservice. They tell counts,
//! never content. The listener has the same header timeout and connection cap as the
//! appservice's (`listener.rs`). The numbers come from where the data already flows: sync
//! progress and its failed-request counter, delivery progress, the homeserver client's upload
//! counter, the store after each round (pending, undecryptable) and the inbound task (owner
//! messages refused).

use std::sync::Arc;

use axum::{http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of the text exposition format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of the bridge, registered under `imessage_bridge_…`.
pub struct Metrics {
    registry: Registry,
    /// Record changes committed by the sync (records and deletions).
    pub records_synced: Counter,
    /// Pages committed by the sync.
    pub pages: Counter,
    /// CloudKit requests of the sync that failed (retried or not).
    pub page_errors: Counter,
    /// Records that could not be decrypted or parsed, as the store has them after a sync.
    pub undecryptable: Gauge,
    /// Events the homeserver accepted from the bridge (one per message sent).
    pub events_delivered: Counter,
    /// Bytes uploaded to the homeserver's media repository (files and thumbnails).
    pub media_bytes_uploaded: Counter,
    /// Seconds per delivered message (since the room's previous one, or since the room started).
    pub delivery_latency: Histogram,
    /// Messages stored but not delivered yet, after the last delivery round.
    pub pending_messages: Gauge,
    /// Messages the owner typed in a portal, which cannot reach iMessage.
    pub owner_messages_refused: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("imessage_bridge");
        let m = Metrics {
            records_synced: Counter::default(),
            pages: Counter::default(),
            page_errors: Counter::default(),
            undecryptable: Gauge::default(),
            events_delivered: Counter::default(),
            media_bytes_uploaded: Counter::default(),
            // 5 ms to about 80 s.
            delivery_latency: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            pending_messages: Gauge::default(),
            owner_messages_refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("records_synced", "Record changes committed by the sync", m.records_synced.clone());
        registry.register("pages", "Pages committed by the sync", m.pages.clone());
        registry.register("page_errors", "CloudKit requests of the sync that failed (retried or not)", m.page_errors.clone());
        registry.register("undecryptable_records", "Records that could not be decrypted or parsed", m.undecryptable.clone());
        registry.register("events_delivered", "Messages the homeserver accepted from the bridge", m.events_delivered.clone());
        registry.register("media_uploaded_bytes", "Bytes uploaded to the media repository", m.media_bytes_uploaded.clone());
        registry.register("delivery_latency_seconds", "Seconds per delivered message", m.delivery_latency.clone());
        registry.register("pending_messages", "Messages stored but not delivered yet", m.pending_messages.clone());
        registry.register("owner_messages_refused", "Messages the owner typed in a portal, which cannot reach iMessage", m.owner_messages_refused.clone());
        Arc::new(Metrics { registry, ..m })
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!("metrics not encoded: {e}");
        }
        out
    }

    /// `GET /metrics`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().route("/metrics", get(move || async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], self.encode()).into_response() }))
    }

    /// Serves [`router`](Self::router) on `addr` in the background (see `listener.rs`).
    pub async fn serve(self: Arc<Self>, addr: std::net::SocketAddr) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        crate::listener::serve(self.router(), addr, crate::listener::ListenLimits::default()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_exposition() {
        let m = Metrics::new();
        m.records_synced.inc_by(41);
        m.records_synced.inc();
        m.pending_messages.set(7);
        m.delivery_latency.observe(0.02);
        let text = m.encode();
        assert!(text.contains("imessage_bridge_records_synced_total 42"), "{text}");
        assert!(text.contains("imessage_bridge_pending_messages 7"), "{text}");
        assert!(text.contains("imessage_bridge_delivery_latency_seconds_count 1"), "{text}");
        assert!(text.contains("imessage_bridge_owner_messages_refused_total 0"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
