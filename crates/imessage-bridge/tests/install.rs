//! `scripts/install.sh` as an operator runs it, under `sh` (dash on Debian, so no bashisms), with
//! the binary this build made (`--binary`, no cargo build), into a temporary prefix, `init` with
//! flags passed through, and a systemd user unit written to a temporary folder.

mod common;

use cloudkit_sim::Faults;
use common::*;

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install.sh")
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_script_copies_the_binary_runs_init_and_writes_the_unit() {
    let sim = start_sim(spec(28, 2, 10, 0), Faults::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let (prefix, units, config) = (tmp.path().join("prefix"), tmp.path().join("units"), tmp.path().join("etc/bridge/config.yaml"));
    let session = tmp.path().join("session.json");
    sim.sim.session_at(&sim.url).save(&session).unwrap();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg(script())
        .arg("--prefix")
        .arg(&prefix)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_imessage-bridge"))
        .arg("--config")
        .arg(&config)
        .args(["--systemd", "user", "--unit-dir"])
        .arg(&units)
        .args(["--", "--homeserver", "http://127.0.0.1:9", "--domain", "example.org", "--owner", "@you:example.org", "--cloudkit", &sim.url])
        .arg("--session")
        .arg(&session)
        .arg("--no-prompt")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    let out = cmd.output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "install.sh failed:\n{stdout}\n{stderr}");

    let bin = prefix.join("bin/imessage-bridge");
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(env!("CARGO_BIN_EXE_imessage-bridge")).unwrap(), "the built binary is installed");
    assert_eq!(mode(&bin), 0o755);
    let registration = config.with_file_name("registration.yaml");
    for file in [&config, &registration] {
        assert_eq!(mode(file), 0o600, "{} holds secrets", file.display());
    }
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("owner: '@you:example.org'") || written.contains("owner: \"@you:example.org\""), "{written}");
    // Only the homeserver's line is on stdout.
    assert_eq!(stdout, format!("app_service_config_files:\n  - {}\n", registration.display()), "stderr:\n{stderr}");

    let unit = std::fs::read_to_string(units.join("imessage-bridge.service")).unwrap();
    let exec = format!("ExecStart=\"{}\" -c \"{}\" run", bin.display(), config.display());
    for line in [exec.as_str(), "Restart=on-failure", "WantedBy=default.target"] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in the unit:\n{unit}");
    }
    assert!(!unit.contains("User="), "a user unit runs as its user:\n{unit}");

    // The installed binary works with what init wrote (the store is created by its first use).
    let status = tokio::process::Command::new(&bin).arg("-c").arg(&config).args(["status", "--json"]).env("RUST_LOG", "warn").output().await.unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    // A wrong option is refused with a non-zero exit, before anything is done.
    let bad = tokio::process::Command::new("sh").arg(script()).arg("--systemd").arg("both").output().await.unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("user or system"));
}
