//! The owner's rooms as matrix-js-sdk (Element Web's engine) shows them: room names and avatars
//! computed by a real client library, not by our own reading of `/sync` ([`crate::names`]).
//!
//! Why: "Element names every DM after its contact" depends on the spec's naming rules, on
//! Synapse's `m.heroes` and on js-sdk's handling of lazy-loaded members and functional (service)
//! members; a check written by us can share our misreadings, js-sdk cannot. The client is
//! `tools/js-client/room-names.mjs` with the pinned packages of its `package-lock.json`, installed
//! by `scripts/install-js-client.sh` (which `scripts/test.sh` runs). When node or the client is
//! missing, the test fails and says to run that script: it never skips.
//!
//! The owner logs in with a device of its own (`m.login.application_service`, the owner being in
//! the bridge's namespace), as a person logs into Element; the token goes to node in its
//! environment.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::env::Env;
use crate::OWNER;

/// How long node may take in all (the script bounds its first sync at [`SYNC_TIMEOUT`]).
const PROCESS_TIMEOUT: Duration = Duration::from_secs(300);
const SYNC_TIMEOUT: Duration = Duration::from_secs(180);

/// One joined room as js-sdk shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct JsRoom {
    pub room_id: String,
    /// js-sdk's computed `room.name` (what Element's room list shows).
    pub name: String,
    /// The room's avatar, else the DM partner's (`getAvatarFallbackMember`), as an mxc URI.
    pub avatar: Option<String>,
    /// The joined members after `loadMembersIfNeeded`, by user ID.
    pub members: Vec<JsMember>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JsMember {
    pub user_id: String,
    /// js-sdk's disambiguated member name.
    pub name: String,
    pub avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct Output {
    user_id: String,
    rooms: Vec<JsRoom>,
}

/// The client's folder (`tools/js-client`).
pub fn client_dir() -> PathBuf {
    crate::repo_root().join("tools/js-client")
}

/// A new access token of the owner (a device of its own), logged in through the appservice.
pub async fn owner_token(env: &Env) -> String {
    let body = json!({ "type": "m.login.application_service", "identifier": { "type": "m.id.user", "user": OWNER } });
    let url = format!("{}/_matrix/client/v3/login", env.synapse.url);
    let resp = reqwest::Client::new().post(&url).bearer_auth(env.as_token()).json(&body).send().await.expect("login");
    let status = resp.status();
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.expect("login body")).expect("login JSON");
    assert!(status.is_success(), "the owner's login: {status} {v}");
    assert_eq!(v["user_id"], OWNER, "the login is the owner's: {v}");
    v["access_token"].as_str().unwrap_or_else(|| panic!("no access_token in {v}")).to_string()
}

const INSTALL: &str = "run scripts/install-js-client.sh (scripts/test.sh does) to install Node.js and the pinned matrix-js-sdk";

/// Panics (a failed test, never a skip) unless node runs and the client's packages are installed;
/// a test calls it first, before it spends time on a setup it could not check.
pub fn assert_installed() {
    let dir = client_dir();
    let node = std::process::Command::new("node").arg("--version").output().unwrap_or_else(|e| panic!("cannot run node ({e}): {INSTALL}"));
    assert!(node.status.success(), "node --version failed ({}): {INSTALL}", node.status);
    assert!(dir.join("node_modules/matrix-js-sdk/package.json").is_file(), "matrix-js-sdk is not installed in {}: {INSTALL}", dir.display());
}

/// Every room the owner has joined, as `room-names.mjs` prints it after js-sdk's first sync.
/// Panics (never skips) when node or the client is not installed.
pub async fn owner_rooms(env: &Env) -> Vec<JsRoom> {
    assert_installed();
    let dir = client_dir();
    let token = owner_token(env).await;
    let child = tokio::process::Command::new("node")
        .arg(dir.join("room-names.mjs"))
        .args(["--homeserver", &env.synapse.url, "--user", OWNER, "--timeout-ms", &SYNC_TIMEOUT.as_millis().to_string()])
        .env("MATRIX_ACCESS_TOKEN", token)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): {INSTALL}"));
    let out = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("room-names.mjs did not finish in {PROCESS_TIMEOUT:?}"))
        .expect("room-names.mjs's output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "room-names.mjs failed ({}):\n{stderr}", out.status);
    let parsed: Output = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("room-names.mjs printed no room list ({e}): {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(parsed.user_id, OWNER, "js-sdk synced as the owner");
    parsed.rooms
}
