//! Events the homeserver pushes to the bridge (appservice transactions), acted on.
//!
//! Why this exists: the bridge has no Apple push transport, so a message the owner types in a
//! portal cannot reach iMessage. It must not vanish without a word: every such message is counted
//! in the store (`status` shows the count per room), and the room is told once — an `m.notice`
//! from the bot, at most once per room per [`NOTICE_EVERY`] — that it stays in Matrix.
//!
//! The appservice handler only hands events over ([`Inbox`]); one task here works through them in
//! order, so a slow store or homeserver never holds back the homeserver's transaction (which is
//! answered 200 at once), and two messages of one transaction cannot both send a notice. Events
//! the bridge sent itself carry its ledger or guid key and are left alone, and so is anything odd:
//! an event that is not a JSON object, has no room or sender, or is of another type.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use store::Store;
use tokio::sync::mpsc;

use crate::client::HomeserverClient;
use crate::keys::LEDGER_KEY;
use crate::GUID_KEY;

/// The shortest time between two notices in one room.
pub const NOTICE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);
/// Content key of the notice (defined in `keys.rs`).
pub use crate::keys::NOTICE_KEY;
/// What the notice says.
pub const NOTICE_TEXT: &str = "This bridge cannot send messages to iMessage (it has no Apple push transport): \
    what you write here stays in Matrix and is not delivered to the chat. (This notice appears at most once a day per room.)";

/// Where the appservice API hands each event of a transaction (the JSON as the homeserver sent it).
pub type Inbox = mpsc::UnboundedSender<Box<serde_json::value::RawValue>>;

/// A message the owner typed in a room, as [`owner_message`] picks it out of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMessage {
    pub room_id: String,
    pub event_id: String,
}

/// The owner's own `m.room.message` that the bridge did not send (no ledger or guid key); None
/// for every other event, however odd.
pub fn owner_message(event: &Value, owner: &str) -> Option<OwnerMessage> {
    if event["type"].as_str() != Some("m.room.message") || event["sender"].as_str() != Some(owner) || !event["state_key"].is_null() {
        return None;
    }
    let content = event["content"].as_object()?;
    if content.contains_key(LEDGER_KEY) || content.contains_key(GUID_KEY) || content.contains_key(NOTICE_KEY) {
        return None;
    }
    Some(OwnerMessage { room_id: event["room_id"].as_str()?.to_string(), event_id: event["event_id"].as_str().unwrap_or("").to_string() })
}

/// Called once for every owner message refused (metrics).
pub type OnRefused = Box<dyn Fn() + Send + Sync>;

/// What the inbound task needs: the homeserver (to send the notice as `bot`), the store (counts,
/// the notice time, which room is which chat) and whose messages to look for.
pub struct Inbound {
    pub hs: HomeserverClient,
    pub store: Arc<dyn Store>,
    pub owner: String,
    pub bot: String,
    pub on_refused: Option<OnRefused>,
}

impl Inbound {
    /// Starts the task that works through the events handed to the returned [`Inbox`]. It ends
    /// when every sender of the inbox is gone.
    pub fn spawn(self) -> (Inbox, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Box<serde_json::value::RawValue>>();
        let task = tokio::spawn(async move {
            while let Some(raw) = rx.recv().await {
                let event: Value = match serde_json::from_str(raw.get()) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!("inbound event is not JSON: {e}");
                        continue;
                    }
                };
                if let Err(e) = self.handle(&event).await {
                    tracing::warn!(event = event["event_id"].as_str().unwrap_or("?"), "inbound event not handled: {e}");
                }
            }
        });
        (tx, task)
    }

    /// Acts on one event: an owner message in a portal is counted, and answered with the notice
    /// unless the room had one within [`NOTICE_EVERY`].
    pub async fn handle(&self, event: &Value) -> crate::Result<()> {
        let Some(msg) = owner_message(event, &self.owner) else { return Ok(()) };
        let portals = self.store.portals().await?;
        let Some(portal) = portals.iter().find(|p| p.room_id == msg.room_id) else {
            tracing::debug!(room = %msg.room_id, "owner message in a room that is not a portal");
            return Ok(());
        };
        let counted = self.store.count_owner_message(&portal.chat_id).await?;
        if let Some(f) = &self.on_refused {
            f();
        }
        tracing::info!(chat = %portal.chat_id, room = %msg.room_id, event = %msg.event_id, count = counted.count,
            "owner message cannot reach iMessage from this bridge (not sent)");
        let now = now_ms();
        let due = counted.last_notice_ms.is_none_or(|at| now.saturating_sub(at) >= NOTICE_EVERY.as_millis() as i64);
        if !due {
            return Ok(());
        }
        let content = json!({ "msgtype": "m.notice", "body": NOTICE_TEXT, NOTICE_KEY: "outbound_unsupported" });
        let txn = format!("imb-notice-{}-{now}", msg.event_id);
        self.hs.send(&msg.room_id, &self.bot, "m.room.message", &txn, None, &content).await?;
        self.store.set_owner_notice(&portal.chat_id, now).await?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "@owner:example.org";

    fn event(sender: &str, kind: &str, content: Value) -> Value {
        json!({ "type": kind, "sender": sender, "room_id": "!r:example.org", "event_id": "$e", "content": content })
    }

    #[test]
    fn only_the_owners_own_messages_are_picked() {
        let typed = event(OWNER, "m.room.message", json!({ "msgtype": "m.text", "body": "hi" }));
        assert_eq!(owner_message(&typed, OWNER), Some(OwnerMessage { room_id: "!r:example.org".into(), event_id: "$e".into() }));
        // Sent by the bridge (double puppeting): carries its keys.
        for key in [LEDGER_KEY, GUID_KEY, NOTICE_KEY] {
            let ours = event(OWNER, "m.room.message", json!({ "msgtype": "m.text", "body": "hi", key: "x" }));
            assert_eq!(owner_message(&ours, OWNER), None, "{key}");
        }
        assert_eq!(owner_message(&event("@ghost:example.org", "m.room.message", json!({ "body": "hi" })), OWNER), None);
        assert_eq!(owner_message(&event(OWNER, "m.reaction", json!({})), OWNER), None);
        let mut state = typed.clone();
        state["state_key"] = json!("");
        assert_eq!(owner_message(&state, OWNER), None);
    }

    #[test]
    fn odd_events_are_left_alone() {
        for odd in [
            json!(null),
            json!([]),
            json!("x"),
            json!({ "type": 5 }),
            json!({ "type": "m.room.message", "sender": OWNER }),
            json!({ "type": "m.room.message", "sender": OWNER, "content": "text" }),
            json!({ "type": "m.room.message", "sender": OWNER, "content": {}, "room_id": 7 }),
        ] {
            assert_eq!(owner_message(&odd, OWNER), None, "{odd}");
        }
    }
}
