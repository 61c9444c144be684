//! A real Radicale (PyPI) for the CardDAV tests (the client's and the bridge's): started on 127.0.0.1 with a throwaway config
//! folder (htpasswd auth, plain passwords: Radicale reads them without extra packages) and
//! storage in the same temporary folder, killed when dropped. Its `max_resource_size` is raised
//! from 10 MB so that a card over the client's 10 MiB cap can be stored.
//!
//! Radicale cannot take a listener and refuses port 0, so a free port is picked by binding port
//! 0 and letting it go; if Radicale then exits (someone else took the port), another is tried.
//! Readiness is polled: the process is alive and the port accepts a connection.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pässword-9f41";

pub struct Radicale {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("IMB_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    let ok = Command::new(&python).args(["-c", "import radicale"]).status().is_ok_and(|s| s.success());
    assert!(ok, "{} cannot import radicale: run scripts/test.sh (or scripts/install-radicale.sh) to install it into the venv", python.display());
    python
}

impl Radicale {
    pub fn start() -> Radicale {
        let python = venv_python();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users"), format!("{USER}:{PASSWORD}\n")).unwrap();
        std::fs::create_dir(dir.path().join("collections")).unwrap();
        for attempt in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let config = dir.path().join("config");
            std::fs::write(
                &config,
                format!(
                    "[server]\nhosts = 127.0.0.1:{port}\nmax_resource_size = 50000000\n[auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\n[storage]\nfilesystem_folder = {coll}\n[logging]\nlevel = warning\n",
                    users = dir.path().join("users").display(),
                    coll = dir.path().join("collections").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join(format!("radicale-{attempt}.log"))).unwrap();
            let mut child =
                Command::new(&python).args(["-m", "radicale", "--config"]).arg(&config).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // exited: most likely the port was taken; try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Radicale { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
                }
                assert!(Instant::now() < deadline, "Radicale did not listen on {port} within 60 s");
                std::thread::sleep(Duration::from_millis(50));
            }
            let log = std::fs::read_to_string(dir.path().join(format!("radicale-{attempt}.log"))).unwrap_or_default();
            eprintln!("Radicale exited on port {port}, retrying: {log}");
        }
        panic!("Radicale did not start in 10 attempts (logs in {})", dir.keep().display());
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    /// `method` on `path` as the test user; returns the status and the ETag header.
    pub async fn call(&self, method: &str, path: &str, content_type: &str, body: String) -> (u16, Option<String>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http()
            .request(method, format!("{}{path}", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), etag)
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
