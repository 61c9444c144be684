//! The operator's side of the bridge, run as a person would: `init` answered on a pseudo-terminal
//! (and upgraded in place), `doctor` on a healthy setup and on each broken piece, `status` and
//! `verify` beside a running `run`, and SIGTERM to `run` in the middle of a sync and of a
//! delivery, after which a restarted bridge ends up with every room verified.

mod common;
mod operator_common;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use cloudkit_sim::Faults;
use common::synapse::{free_port, Synapse};
use common::*;
use operator_common::*;

/// A pseudo-terminal whose slave side is a child's stdin, stdout and stderr; the test reads what
/// the child writes and types answers into the master side.
struct Pty {
    master: std::fs::File,
    output: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Everything read so far, and how far `expect` has matched.
    seen: String,
    matched: usize,
}

impl Pty {
    fn spawn(mut cmd: std::process::Command) -> (Pty, std::process::Child) {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two new file descriptors into the given ints; the name, termios
        // and window size pointers may be null.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(rc, 0, "openpty failed: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just returned by openpty and are owned by nobody else.
        let (master, slave) = unsafe { (std::fs::File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave);
        let child = cmd.spawn().unwrap();
        drop(cmd); // closes the parent's copies of the slave, so reads end when the child exits
        let mut reader = master.try_clone().unwrap();
        let (tx, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        (Pty { master, output, seen: String::new(), matched: 0 }, child)
    }

    /// Waits (bounded) until `needle` appears after the previous match.
    fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(i) = self.seen[self.matched..].find(needle) {
                self.matched += i + needle.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("{needle:?} did not appear; the terminal showed:\n{}", self.seen),
            }
        }
    }

    fn answer(&mut self, line: &str) {
        self.master.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
}

fn wait_exit(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A stand-in homeserver for `init`'s check: answers every request with a `/versions` body.
async fn fake_homeserver() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf[got..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got += n,
                    }
                }
                let body = r#"{"versions":["v1.11","v1.12"]}"#;
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, task)
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn init_on_pty(bridge: &BridgeDir) -> (Pty, std::process::Child) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_imessage-bridge"));
    cmd.arg("-c").arg(&bridge.config).arg("init").env("RUST_LOG", "warn").env("USER", "alice");
    Pty::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_init_on_a_terminal_then_an_upgrade_in_place() {
    let sim = start_sim(spec(21, 4, 200, 0), Faults::default()).await;
    let bridge = BridgeDir::new(&sim);
    std::fs::remove_file(&bridge.config).unwrap();
    let handles = sim.sim.session_at(&sim.url).handles.clone();
    assert!(handles.len() >= 2, "the simulated account has two handles: {handles:?}");
    let (hs_url, _hs) = fake_homeserver().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let session = bridge.dir.path().join("session.json");

    let (mut t, mut child) = init_on_pty(&bridge);
    t.expect("Homeserver URL [http://127.0.0.1:8008]: ");
    t.answer(&dead);
    t.expect("✗");
    t.expect("Use it anyway? [y/N]");
    t.answer("n");
    t.expect("Homeserver URL");
    t.answer(&hs_url);
    t.expect("✓");
    t.expect("answers (spec v1.11 to v1.12)");
    t.expect("Server name (the part after ':' in user ids) [127.0.0.1]: ");
    t.answer(DOMAIN);
    t.expect("Your Matrix user id [@alice:localhost]: ");
    t.answer("@owner:elsewhere.example");
    t.expect("not on this homeserver's server name localhost");
    t.expect("Your Matrix user id");
    t.answer(OWNER);
    t.expect("Database (sqlite:PATH or postgres://…) [sqlite:bridge.db]: ");
    t.answer("");
    t.expect("Source (cloudkit, chat-db or ios-backup) [cloudkit]: ");
    t.answer("");
    t.expect("CloudKit URL [https://gateway.icloud.com]: ");
    t.answer(&sim.url);
    t.expect("Session file [session.json]: ");
    t.answer(session.to_str().unwrap());
    t.expect("Which of the account's handles is you?");
    t.expect(&format!("1) {}", handles[0]));
    t.expect(&format!("2) {}", handles[1]));
    t.expect("Handle number [1]: ");
    t.answer("2");
    t.expect("Contacts: address book (auto, off, or an .abcddb/.sqlitedb file or folder) [auto]: ");
    t.answer("");
    t.expect("Contacts: vCard files, comma-separated (- for none) [-]: ");
    t.answer("people.vcf");
    t.expect("Contacts: CardDAV server URL (- for none) [-]: ");
    t.answer("");
    t.expect("wrote");
    assert!(wait_exit(&mut child, "init").success(), "init failed:\n{}", t.seen);

    let reg_path = bridge.dir.path().join("registration.yaml");
    #[cfg(unix)]
    {
        assert_eq!(mode(&bridge.config), 0o600, "config.yaml names the session: owner only");
        assert_eq!(mode(&reg_path), 0o600, "registration.yaml holds the tokens: owner only");
    }
    let config = yaml(&bridge.config);
    assert_eq!(config["matrix"]["homeserver"].as_str(), Some(hs_url.as_str()));
    assert_eq!(config["matrix"]["domain"], DOMAIN);
    assert_eq!(config["matrix"]["owner"], OWNER);
    assert_eq!(config["database"]["uri"], "sqlite:bridge.db");
    assert_eq!(config["cloudkit"]["url"].as_str(), Some(sim.url.as_str()));
    assert_eq!(config["cloudkit"]["session"].as_str(), session.to_str());
    assert_eq!(config["cloudkit"]["preferred_handle"].as_str(), Some(handles[1].as_str()), "handle 2 was picked");
    let vcf = config["contacts"]["vcf"][0].as_str().expect("the vCard file answered is in the config");
    assert!(Path::new(vcf).is_absolute() && vcf.ends_with("people.vcf"), "{vcf}");
    assert!(config["contacts"].get("address_book").is_none_or(|b| b == "auto"), "{:?}", config["contacts"]);
    let reg = yaml(&reg_path);
    let (as_token, hs_token) = (reg["as_token"].as_str().unwrap().to_string(), reg["hs_token"].as_str().unwrap().to_string());
    assert!(as_token.len() >= 32 && hs_token.len() >= 32 && as_token != hs_token);
    assert_eq!(reg["url"], "http://127.0.0.1:29333");
    assert!(reg["namespaces"]["users"].as_sequence().unwrap().iter().any(|n| n["regex"].as_str().unwrap().contains("owner")));

    // The database the bridge creates is owner-only as well.
    let out = bridge.run(&["status"]).await;
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    assert_eq!(mode(&bridge.dir.path().join("bridge.db")), 0o600);

    // An older config: no attachments section, no preferred handle, no matrix.concurrency, and a
    // value of its own (sync_interval_secs: 7) that the upgrade must keep.
    let old = format!(
        "cloudkit:\n  url: {}\n  session: {}\ndatabase:\n  uri: sqlite:bridge.db\nmatrix:\n  homeserver: {hs_url}\n  domain: {DOMAIN}\n  \
         owner: \"{OWNER}\"\n  registration: registration.yaml\n  listen: 127.0.0.1:29333\n  sync_interval_secs: 7\n",
        sim.url,
        session.display()
    );
    std::fs::write(&bridge.config, old).unwrap();
    let (mut t, mut child) = init_on_pty(&bridge);
    t.expect(&format!("Homeserver URL [{hs_url}]: "));
    t.answer("");
    t.expect("✓");
    t.expect("[localhost]: ");
    t.answer("");
    t.expect(&format!("[{OWNER}]: "));
    t.answer("");
    t.expect("[sqlite:bridge.db]: ");
    t.answer("");
    t.expect("[cloudkit]: ");
    t.answer("");
    t.expect(&format!("[{}]: ", sim.url));
    t.answer("");
    t.expect(&format!("[{}]: ", session.display()));
    t.answer("");
    t.expect("Which of the account's handles is you?");
    t.expect("Handle number [1]: ");
    t.answer("2");
    for _ in 0..3 {
        t.expect("]: ");
        t.answer("");
    }
    t.expect("(appservice tokens kept)");
    assert!(wait_exit(&mut child, "init (upgrade)").success(), "init failed:\n{}", t.seen);
    let config = yaml(&bridge.config);
    assert_eq!(config["matrix"]["sync_interval_secs"], 7, "a value of the old config is kept");
    assert_eq!(config["matrix"]["concurrency"], 4, "a key the old config lacked is filled");
    assert_eq!(config["attachments"]["max_bytes"], 100 << 20);
    assert_eq!(config["sync"]["error_budget"], 3);
    assert_eq!(config["cloudkit"]["preferred_handle"].as_str(), Some(handles[1].as_str()));
    let reg = yaml(&reg_path);
    assert_eq!((reg["as_token"].as_str().unwrap(), reg["hs_token"].as_str().unwrap()), (as_token.as_str(), hs_token.as_str()), "tokens kept");
    #[cfg(unix)]
    assert_eq!((mode(&bridge.config), mode(&reg_path)), (0o600, 0o600));

    // A third run shows the choice as current; off a terminal nothing is asked and nothing changes.
    let (mut t, mut child) = init_on_pty(&bridge);
    for _ in 0..7 {
        t.expect("]: ");
        t.answer("");
    }
    t.expect(&format!("2) {}  (current)", handles[1]));
    t.expect("Handle number [2]: ");
    t.answer("");
    t.expect("[auto]: ");
    t.answer("");
    for _ in 0..2 {
        t.expect("[-]: ");
        t.answer("");
    }
    assert!(wait_exit(&mut child, "init (third)").success(), "init failed:\n{}", t.seen);
    let before = std::fs::read_to_string(&bridge.config).unwrap();
    let out = bridge.run(&["init"]).await;
    assert!(out.status.success(), "init off a terminal: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&bridge.config).unwrap(), before);
    assert_eq!(yaml(&reg_path)["as_token"].as_str(), Some(as_token.as_str()));

    // A script that passes every required flag is not stopped by a question, even on a terminal.
    let scripted = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_imessage-bridge"));
    cmd.args(["init", "--homeserver", &hs_url, "--domain", DOMAIN, "--owner", OWNER, "--cloudkit", &sim.url, "--session"])
        .arg(&session)
        .arg("--out")
        .arg(scripted.path())
        .env("RUST_LOG", "warn");
    let (mut t, mut child) = Pty::spawn(cmd);
    t.expect("wrote");
    assert!(wait_exit(&mut child, "init with flags").success(), "{}", t.seen);
    assert!(!t.seen.contains("]: "), "nothing is asked when the flags say it all:\n{}", t.seen);
    let config = yaml(&scripted.path().join("config.yaml"));
    assert_eq!((config["matrix"]["owner"].as_str(), config["cloudkit"]["preferred_handle"].as_str()), (Some(OWNER), None));
}

/// The line of check `name` in doctor's output.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines().find(|l| l.split_whitespace().nth(1) == Some(name)).unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

fn assert_failed_with(doctor: (bool, String), name: &str, says: &str) {
    let (ok, out) = doctor;
    assert!(!ok, "doctor must exit non-zero:\n{out}");
    let l = line(&out, name);
    assert!(l.starts_with('✗') && l.contains(says) && l.contains("— fix: "), "expected ✗ {name} saying {says:?}, got {l:?} in:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_on_a_healthy_setup_and_on_each_broken_piece() {
    let s = Env::start(start_sim(spec(22, 3, 100, 0), Faults::default()).await).await;
    let out = s.bridge.run(&["status"]).await; // creates and migrates the store
    assert!(out.status.success());
    let (ok, out) = s.doctor().await;
    assert!(ok, "healthy setup:\n{out}");
    let checks = ["config", "store", "session", "cloudkit", "homeserver", "registration", "owner", "appservice"];
    let names: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(names, checks, "one line per check, in order:\n{out}");
    assert!(out.lines().all(|l| l.starts_with('✓')), "{out}");
    assert!(line(&out, "homeserver").contains("Synapse"), "{out}");
    assert!(line(&out, "cloudkit").contains("messages on the server"), "{out}");
    assert!(line(&out, "appservice").contains("ping answered by doctor"), "{out}");

    // An unknown key is named (and `status` warns about it but still works).
    let config = std::fs::read_to_string(&s.bridge.config).unwrap();
    s.bridge.set(&["matrix", "sync_interval_sec"], 5);
    assert_failed_with(s.doctor().await, "config", "unknown key `matrix.sync_interval_sec`");
    let status = s.bridge.command(&["status"]).env("RUST_LOG", "warn").output().await.unwrap();
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stderr).contains("unknown key `matrix.sync_interval_sec`"));
    std::fs::write(&s.bridge.config, &config).unwrap();

    // A registration whose as_token the homeserver does not know.
    let reg_path = s.bridge.dir.path().join("registration.yaml");
    let reg = std::fs::read_to_string(&reg_path).unwrap();
    let mut wrong = yaml(&reg_path);
    wrong["as_token"] = "not-the-token-synapse-has".into();
    std::fs::write(&reg_path, serde_norway::to_string(&wrong).unwrap()).unwrap();
    assert_failed_with(s.doctor().await, "registration", "refuses the registration's as_token");
    std::fs::write(&reg_path, &reg).unwrap();

    // No session file.
    let session = s.bridge.dir.path().join("session.json");
    std::fs::rename(&session, session.with_extension("moved")).unwrap();
    let broken = s.doctor().await;
    assert!(line(&broken.1, "cloudkit").starts_with("- "), "CloudKit is not checked without a session:\n{}", broken.1);
    assert_failed_with(broken, "session", "cannot read");
    std::fs::rename(session.with_extension("moved"), &session).unwrap();
    assert!(s.doctor().await.0, "restored");

    // A store one migration behind.
    let latest = s.bridge.sqlite_int("SELECT MAX(version) FROM schema_migrations").await.unwrap();
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&s.bridge.db_uri).await.unwrap();
        sqlx::query("DELETE FROM schema_migrations WHERE version = $1").bind(latest).execute(&mut c).await.unwrap();
        c.close().await.unwrap();
    }
    assert_failed_with(s.doctor().await, "store", &format!("schema version {}, this build needs {latest} (not migrated)", latest - 1));
    assert_eq!(s.bridge.sqlite_int("SELECT MAX(version) FROM schema_migrations").await, Some(latest - 1), "doctor does not migrate");

    // The homeserver down.
    s.synapse.stop().await;
    let out = s.bridge.run(&["doctor"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert_failed_with((out.status.success(), text.clone()), "homeserver", "does not answer");
    assert!(line(&text, "registration").starts_with("- "), "{text}");
    let _ = (s.sim, s.listen_port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_sync_and_mid_delivery_then_status_and_verify_beside_run() {
    // Small pages, so the sync takes long enough to be stopped in the middle.
    let s = Env::start(start_sim(spec(23, 8, 1500, 0), Faults { page_size: 5, ..Faults::default() }).await).await;
    let b = &s.bridge;
    const PAGES: &str = "SELECT pages FROM zones WHERE zone = 'messageManateeZone'";
    const DELIVERED: &str = "SELECT COUNT(*) FROM deliveries WHERE event_id IS NOT NULL";

    // 1. SIGTERM while the message zone is paging.
    let fast = Duration::from_millis(5);
    let mut run = spawn_run(b, "run-1.log");
    wait_for("the sync to be under way", 120, fast, || b.sqlite_int(PAGES), |p| p.unwrap_or(0) >= 10).await;
    terminate(&mut run, "mid-sync").await;
    let status = b.status_json().await;
    let messages = zone(&status, "messageManateeZone");
    assert_eq!(messages["stop_reason"], "interrupted", "{messages}");
    assert_eq!(messages["complete"], false, "{messages}");
    assert_eq!(b.sqlite_int(DELIVERED).await.unwrap_or(0), 0, "nothing was delivered before the sync finished");

    // 2. Restart; SIGTERM while the history goes in. status works beside run meanwhile.
    let mut run = spawn_run(b, "run-2.log");
    wait_for("delivery to be under way", 300, fast, || b.sqlite_int(DELIVERED), |n| n.unwrap_or(0) >= 30).await;
    let (delivered, stored, waiting) = delivery_totals(&b.status_json().await);
    assert!(delivered > 0 && waiting > 0 && delivered < stored, "status beside run, mid-delivery: {delivered}/{stored}, {waiting} waiting");
    let stderr = terminate(&mut run, "mid-delivery").await;
    let (delivered_at_stop, _, waiting) = delivery_totals(&b.status_json().await);
    assert!(waiting > 0, "stopped before the end of the history:\n{stderr}");
    assert_eq!(zone(&b.status_json().await, "messageManateeZone")["stop_reason"], "api_done", "the restarted sync finished");

    // 3. Restart; wait until everything is delivered while run keeps running, then verify,
    // status and doctor beside it (none may need the appservice port run holds).
    let mut run = spawn_run(b, "run-3.log");
    let status = wait_for("delivery to finish", 600, Duration::from_secs(1), || b.status_json(), |s| delivery_totals(s).2 == 0).await;
    let (delivered, stored, _) = delivery_totals(&status);
    assert_eq!(delivered, stored);
    assert!(delivered > delivered_at_stop);
    assert!(status["rooms"].as_array().unwrap().iter().all(|r| (r["stored"] == 0 || r["room_id"].is_string()) && r["last_error"].is_null()), "{status}");
    let out = b.run(&["verify", "--json"]).await;
    assert!(out.status.success(), "verify beside run: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    for c in v["chats"].as_array().unwrap() {
        assert_eq!((c["missing"].as_u64(), c["duplicates"].as_u64()), (Some(0), Some(0)), "{c}");
    }
    let out = b.run(&["status"]).await;
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && table.contains("delivered") && table.contains(&format!("{delivered} of {stored} messages delivered, 0 pending")),
        "{table}"
    );
    let (ok, doctor) = s.doctor().await;
    assert!(ok, "doctor beside run:\n{doctor}");
    assert!(line(&doctor, "appservice").contains("answered by the process on that port"), "{doctor}");
    assert!(run.0.try_wait().unwrap().is_none(), "run is still running");
    terminate(&mut run, "after delivery").await;
    let _ = (&s.sim, s.listen_port);
}

/// A delivery round that fails (the homeserver is down while new messages arrive) does not end
/// `run`: the error is logged and shown per room in `status`, and once the homeserver is back a
/// later round delivers the messages and clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_going_while_the_homeserver_is_down() {
    let mut account = spec(24, 3, 60, 0);
    account.later = 20;
    let mut s = Env::start(start_sim(account, Faults::default()).await).await;
    s.bridge.change(&["matrix", "sync_interval_secs"], 60, 2);
    let every = Duration::from_secs(1);
    let mut run = spawn_run(&s.bridge, "run.log");
    let delivered = |st: &serde_json::Value| matches!(delivery_totals(st), (_, stored, 0) if stored > 0);
    let status = wait_for("the history to be delivered", 300, every, || s.bridge.status_json(), delivered).await;
    let (history, _, _) = delivery_totals(&status);
    assert!(history > 0);

    let port = s.synapse.port;
    s.synapse.stop().await;
    s.sim.sim.release_later();
    let has_error = |st: &serde_json::Value| st["rooms"].as_array().unwrap().iter().any(|r| r["last_error"].is_string());
    let failed = wait_for("a failed round in status", 180, every, || s.bridge.status_json(), |st| has_error(st)).await;
    let room = failed["rooms"].as_array().unwrap().iter().find(|r| r["last_error"].is_string()).unwrap();
    assert!(room["pending"].as_i64().unwrap() > 0, "the error is on a room with messages to send: {room}");
    assert!(room["last_error"].as_str().unwrap().contains("127.0.0.1"), "{room}");
    assert!(run.0.try_wait().unwrap().is_none(), "run keeps going after a failed round:\n{}", std::fs::read_to_string(&run.1).unwrap());

    let registration = s.bridge.dir.path().join("registration.yaml");
    s.synapse = Synapse::start(s.bridge.dir.path(), port, DOMAIN, &registration).await;
    let done = |st: &serde_json::Value| delivery_totals(st).2 == 0 && !has_error(st);
    let status = wait_for("the later messages after the homeserver is back", 300, every, || s.bridge.status_json(), done).await;
    assert!(delivery_totals(&status).0 > history, "{status}");
    let stderr = terminate(&mut run, "after the outage").await;
    assert!(stderr.contains("delivery round failed, next round in"), "{stderr}");
    let out = s.bridge.run(&["verify"]).await;
    assert!(out.status.success(), "verify after the outage:\n{}", String::from_utf8_lossy(&out.stdout));
}
