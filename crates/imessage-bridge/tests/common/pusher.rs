//! A push gateway on 127.0.0.1 for tests: the owner registers it as an HTTP pusher, and Synapse
//! POSTs every notification to `/_matrix/push/v1/notify` (the Push Gateway API), as it would to
//! the gateway that makes a phone buzz. Tests read what it received.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One notification Synapse pushed: the event and its room, or (after a read receipt) only the
/// owner's new badge count.
#[derive(Debug, Clone)]
pub enum Pushed {
    Event { event_id: String, room_id: String },
    Badge { unread: u64 },
}

pub struct PushGateway {
    /// The URL Synapse must be given (`data.url` of the pusher).
    pub notify_url: String,
    received: Arc<Mutex<Vec<Pushed>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl PushGateway {
    pub async fn start() -> PushGateway {
        let received: Arc<Mutex<Vec<Pushed>>> = Arc::default();
        let sink = received.clone();
        let app = Router::new().route(
            "/_matrix/push/v1/notify",
            post(move |Json(body): Json<Value>| {
                let sink = sink.clone();
                async move {
                    let n = &body["notification"];
                    let pushed = match (n["event_id"].as_str(), n["room_id"].as_str()) {
                        (Some(event_id), Some(room_id)) => Pushed::Event { event_id: event_id.into(), room_id: room_id.into() },
                        _ => Pushed::Badge { unread: n["counts"]["unread"].as_u64().unwrap_or(0) },
                    };
                    sink.lock().unwrap().push(pushed);
                    Json(json!({ "rejected": [] }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let notify_url = format!("http://{}/_matrix/push/v1/notify", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PushGateway { notify_url, received, _server: server }
    }

    pub fn received(&self) -> Vec<Pushed> {
        self.received.lock().unwrap().clone()
    }

    /// The pushed events' ids.
    pub fn events(&self) -> Vec<String> {
        self.received().into_iter().filter_map(|p| if let Pushed::Event { event_id, .. } = p { Some(event_id) } else { None }).collect()
    }

    /// Waits (bounded) until at least `n` events were pushed; returns their ids.
    pub async fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.events();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers this gateway as `user`'s HTTP pusher, through the appservice (`as_token`).
    pub async fn register(&self, homeserver: &str, as_token: &str, user: &str) {
        let body = json!({
            "kind": "http",
            "app_id": "fi.imessage_bridge.test",
            "app_display_name": "test phone",
            "device_display_name": "test phone",
            "pushkey": "test-pushkey",
            "lang": "en",
            "data": { "url": self.notify_url, "format": "event_id_only" },
        });
        let r = reqwest::Client::new()
            .post(format!("{homeserver}/_matrix/client/v3/pushers/set"))
            .bearer_auth(as_token)
            .query(&[("user_id", user)])
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "pushers/set: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
}
