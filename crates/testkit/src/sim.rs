//! The CloudKit simulator served in-process on `127.0.0.1:0` (the listener is bound by the
//! simulator itself and its address read back, so no port can be taken by someone else between
//! choosing and binding), and its ground truth.

use std::collections::BTreeSet;
use std::sync::Arc;

use cloudkit_sim::{AccountSpec, Faults, Sim, TruthLine};

/// A simulator serving on loopback; stopped when dropped.
pub struct SimHandle {
    pub sim: Arc<Sim>,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start_sim(spec: AccountSpec, faults: Faults) -> SimHandle {
    serve_sim(Sim::new(spec, faults)).await
}

/// Serves a simulator built by the caller (e.g. with `--apple-blobs` fixtures).
pub async fn serve_sim(sim: Sim) -> SimHandle {
    let sim = Arc::new(sim);
    let (addr, task) = cloudkit_sim::spawn(sim.clone(), std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("serve the simulator on 127.0.0.1:0");
    SimHandle { sim, url: format!("http://{addr}"), task }
}

/// An account: `chats` chats sharing `messages` messages, and a group chat of `big_chat`.
pub fn spec(seed: u64, chats: u32, messages: u64, big_chat: u64) -> AccountSpec {
    AccountSpec { seed, chats, messages, big_chat, later: 0 }
}

/// Every line of the simulator's truth as it is now (after a release, with the later messages).
pub fn truth_lines(sim: &Sim) -> Vec<TruthLine> {
    let mut lines = Vec::new();
    sim.truth(|line| lines.push(line));
    lines
}

/// Guids of every message in the simulator's ground truth.
pub fn truth_guids(sim: &Sim) -> BTreeSet<String> {
    let mut guids = BTreeSet::new();
    sim.truth(|line| {
        if let TruthLine::Message { guid, .. } = line {
            guids.insert(guid);
        }
    });
    guids
}
