//! The homeserver's profile and room-directory endpoints: a ghost's display name and avatar, and
//! a portal's alias. Apart from `client.rs` because both are about what a person *sees* (names,
//! photos, no alias as a room name), not about moving events.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{enc, found, HomeserverClient, MAX_ATTEMPTS};
use crate::{MatrixError, Result};

impl HomeserverClient {
    pub async fn set_displayname(&self, user: &str, name: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/profile/{}/displayname", enc(user));
        self.request::<Value>(MAX_ATTEMPTS, Method::PUT, &path, Some(user), &[], Some(&json!({ "displayname": name })), "set displayname").await?;
        Ok(())
    }

    /// Sets `user`'s avatar to `mxc`; an empty `mxc` removes it (Synapse stores no avatar then).
    pub async fn set_avatar_url(&self, user: &str, mxc: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/profile/{}/avatar_url", enc(user));
        self.request::<Value>(MAX_ATTEMPTS, Method::PUT, &path, Some(user), &[], Some(&json!({ "avatar_url": mxc })), "set avatar").await?;
        Ok(())
    }

    /// `user`'s global profile (`displayname`, `avatar_url`), None when the user has none.
    pub async fn profile(&self, as_user: &str, user: &str) -> Result<Option<Value>> {
        let path = format!("/_matrix/client/v3/profile/{}", enc(user));
        found(self.request::<Value>(MAX_ATTEMPTS, Method::GET, &path, Some(as_user), &[], None, "get profile").await)
    }

    /// Points the alias `alias` at `room` without publishing it in the room (no
    /// `m.room.canonical_alias`). Ok(false) when the alias already names a room (Synapse answers
    /// 409; other servers `M_ROOM_IN_USE`): which one, [`Self::resolve_alias`] says.
    pub async fn set_alias(&self, as_user: &str, alias: &str, room: &str) -> Result<bool> {
        let path = format!("/_matrix/client/v3/directory/room/{}", enc(alias));
        match self.request::<Value>(MAX_ATTEMPTS, Method::PUT, &path, Some(as_user), &[], Some(&json!({ "room_id": room })), "set alias").await {
            Ok(_) => Ok(true),
            Err(MatrixError::Api { status: 409, .. }) => Ok(false),
            Err(e) if e.errcode() == Some("M_ROOM_IN_USE") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The room `alias` names, None when it names none.
    pub async fn resolve_alias(&self, as_user: &str, alias: &str) -> Result<Option<String>> {
        let path = format!("/_matrix/client/v3/directory/room/{}", enc(alias));
        let v = found(self.request::<Value>(MAX_ATTEMPTS, Method::GET, &path, Some(as_user), &[], None, "resolve alias").await)?;
        Ok(v.and_then(|v| v["room_id"].as_str().map(str::to_string)))
    }

    /// Removes the room alias `alias` (the appservice owns its alias namespace); none is fine.
    pub async fn delete_alias(&self, as_user: &str, alias: &str) -> Result<()> {
        let path = format!("/_matrix/client/v3/directory/room/{}", enc(alias));
        found(self.request::<Value>(MAX_ATTEMPTS, Method::DELETE, &path, Some(as_user), &[], None, "delete alias").await).map(drop)
    }
}
