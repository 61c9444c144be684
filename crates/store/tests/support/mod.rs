//! A throwaway PostgreSQL server for tests: `initdb` + `postgres` from
//! `/usr/lib/postgresql/*/bin` in a temporary directory, on a free 127.0.0.1 port.
//!
//! Why a watchdog shell: the server is shared by every test of the binary (one `initdb` instead
//! of one per test), so it lives in a `static`, and statics are never dropped. The server runs
//! under `sh`, which waits on its stdin, a pipe only this process holds: when the [`PgServer`]
//! is dropped *or the test process exits for any reason* (even a crash) the pipe closes, and the
//! shell stops PostgreSQL (fast shutdown) and deletes the directory. Nothing outlives the tests.
//!
//! As root (CI), `initdb` refuses to run, so everything runs as the `postgres` OS user via
//! `runuser`, in a directory chowned to it.
//!
//! The server runs with `ssl=on` and a certificate for `127.0.0.1` signed by a throwaway CA made
//! with the `openssl` CLI (an independent implementation, so the TLS tests check sqlx/rustls
//! against something they did not make). A second, unrelated CA is made too, for the negative
//! case. Plain `postgres://` URIs still work: their default `sslmode=prefer` negotiates TLS.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

const INSTALL_HINT: &str = "run scripts/install-postgres.sh (installs the Debian `postgresql` package)";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PgServer {
    pub port: u16,
    /// The throwaway CA that signed the server's certificate, and one that did not.
    #[allow(dead_code)]
    pub tls: TlsFiles,
    child: Option<Child>,
}

/// PEM files of the test server's PKI (read only by some test binaries).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub wrong_ca: PathBuf,
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take()); // EOF: the watchdog stops the server and removes its directory
            let _ = child.wait();
        }
    }
}

static SERVER: tokio::sync::OnceCell<PgServer> = tokio::sync::OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The newest installed PostgreSQL `bin` directory with both `initdb` and `postgres`.
fn bindir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| format!("no initdb/postgres under {}/*/bin", root.display()))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// `program args…`, as the `postgres` OS user when we are root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

const WATCHDOG: &str = r#"
"$1/postgres" -D "$2/data" -p "$3" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
    -c ssl=on -c ssl_cert_file="$2/tls/server.crt" -c ssl_key_file="$2/tls/server.key" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off >"$2/server.log" 2>&1 &
pid=$!
read _eof
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$2"
"#;

async fn start() -> Result<PgServer, String> {
    let bin = bindir().map_err(|e| format!("PostgreSQL binaries not found ({e}); {INSTALL_HINT}"))?;
    let dir = tempfile::Builder::new().prefix("store-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    if is_root() {
        let status = Command::new("chown").arg("postgres:").arg(&dir).status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("chown postgres: {} failed; does the postgres OS user exist? {INSTALL_HINT}", dir.display()));
        }
    }
    let out = command(&bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("running initdb: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let tls = match make_tls(&dir.join("tls")) {
        Ok(tls) => tls,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let port = free_port();
    let child = command(Path::new("/bin/sh"))
        .args(["-c", WATCHDOG, "sh"])
        .arg(&bin)
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let server = PgServer { port, tls, child: Some(child) };
    // Ready when it accepts a connection; bounded, polling (not a fixed sleep).
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match PgConnection::connect(&server.uri("postgres")).await {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(server);
            }
            Err(e) if Instant::now() >= deadline => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!("postgres not ready after {READY_TIMEOUT:?}: {e}\nserver log:\n{log}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl").current_dir(dir).args(args).output().map_err(|e| format!("running openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A self-signed CA (P-256): `NAME.key`, `NAME.crt` in `dir`.
fn make_ca(dir: &Path, name: &str) -> Result<(), String> {
    let (key, crt, subj) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={name}"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )
}

/// The server's PKI in `dir`: a CA, a server certificate for IP 127.0.0.1 it signed, and an
/// unrelated CA. As root, the directory is handed to `postgres`, which insists on owning a 0600 key.
fn make_tls(dir: &Path) -> Result<TlsFiles, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    make_ca(dir, "ca")?;
    make_ca(dir, "wrong-ca")?;
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        .map_err(|e| e.to_string())?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    )?;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
    if is_root() {
        let status = Command::new("chown").arg("-R").arg("postgres:").arg(dir).status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("chown -R postgres: {} failed", dir.display()));
        }
    }
    Ok(TlsFiles { ca: dir.join("ca.crt"), wrong_ca: dir.join("wrong-ca.crt") })
}

impl PgServer {
    pub fn uri(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// The shared test server, started on first use.
pub async fn server() -> &'static PgServer {
    match SERVER.get_or_try_init(start).await {
        Ok(s) => s,
        Err(e) => panic!("cannot run the PostgreSQL tests: {e}"),
    }
}

/// A fresh, empty database on the shared test server; its URI.
pub async fn fresh_database() -> String {
    let server = server().await;
    let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    let mut admin = PgConnection::connect(&server.uri("postgres")).await.expect("connect to test server");
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
    let _ = admin.close().await;
    server.uri(&name)
}
