//! The outside oracle: Python's `iphone_backup_decrypt` (PyPI, MIT; jsharkey13) must decrypt
//! the backups that cloudkit-sim's packer writes to the very bytes that were packed, and so must
//! this crate. Where the two implementations of this repository agree only with each other, this
//! test still fails.
//!
//! The package is installed into the project's venv by `scripts/test.sh`
//! (`scripts/install-test-python.sh`); the venv is `$IMB_VENV` or `<repo>/.venv`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use ios_backup::{Backup, BackupError, Password};

/// The venv's python with `iphone_backup_decrypt` importable, or a failure saying how to get it.
fn oracle_python() -> PathBuf {
    let venv = std::env::var_os("IMB_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    let ok = Command::new(&python).args(["-c", "import iphone_backup_decrypt"]).status().is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import iphone_backup_decrypt: run scripts/test.sh (or scripts/install-test-python.sh) to install it into the venv",
        python.display()
    );
    python
}

/// Extracts every listed (domain, relativePath) with the oracle into `out/<n>`; prints what the
/// package printed (it prints `INFO:` when a size disagrees with Manifest.db).
const EXTRACT: &str = r#"
import json, sys
from iphone_backup_decrypt import EncryptedBackup
args = json.load(sys.stdin)
b = EncryptedBackup(backup_directory=args["dir"], passphrase=args["password"])
b.test_decryption()
for n, (domain, path) in enumerate(args["files"]):
    b.extract_file(relative_path=path, domain_like=domain, output_filename=f'{args["out"]}/{n}')
with b.manifest_db_cursor() as cur:
    cur.execute("SELECT count(*) FROM Files WHERE flags = 1")
    print("files", cur.fetchone()[0])
"#;

fn run_oracle(python: &PathBuf, script: &str, input: &serde_json::Value) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting python");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn iphone_backup_decrypt_and_the_reader_both_get_the_packed_bytes() {
    let python = oracle_python();
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backup");
    let entries = common::pack(&backup_dir, true, 7).await;

    // The oracle.
    let out = dir.path().join("oracle");
    std::fs::create_dir(&out).unwrap();
    let files: Vec<[&str; 2]> = entries.iter().map(|e| [e.domain.as_str(), e.relative_path.as_str()]).collect();
    let input = serde_json::json!({
        "dir": backup_dir, "out": out, "files": files,
        "password": std::str::from_utf8(common::PASSWORD).unwrap(),
    });
    let result = run_oracle(&python, EXTRACT, &input);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "iphone_backup_decrypt failed: {}\n{stdout}", String::from_utf8_lossy(&result.stderr));
    assert!(!stdout.contains("INFO:"), "the oracle found sizes that disagree with Manifest.db: {stdout}");
    assert!(stdout.contains(&format!("files {}", entries.len())), "{stdout}");
    for (n, entry) in entries.iter().enumerate() {
        let got = std::fs::read(out.join(n.to_string())).unwrap();
        assert!(
            got == common::content(entry),
            "oracle: {} {} differs ({} bytes, packed {})",
            entry.domain,
            entry.relative_path,
            got.len(),
            common::content(entry).len()
        );
    }

    // The reader.
    let backup = Backup::open(&backup_dir, Some(&Password::new(common::PASSWORD)), None).await.unwrap();
    assert!(backup.info().encrypted);
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    for (n, entry) in entries.iter().enumerate() {
        let file = backup.find(&entry.domain, &entry.relative_path).await.unwrap().unwrap_or_else(|| panic!("{} missing", entry.relative_path));
        let dest = mine.join(n.to_string());
        let len = backup.extract(&file, &dest).await.unwrap();
        assert_eq!(len, common::content(entry).len() as u64);
        assert!(std::fs::read(&dest).unwrap() == common::content(entry), "reader: {} differs", entry.relative_path);
    }
}

#[tokio::test]
async fn a_wrong_password_is_one_clear_error_for_both() {
    let python = oracle_python();
    let dir = tempfile::tempdir().unwrap();
    common::pack(dir.path(), true, 8).await;
    let err = Backup::open(dir.path(), Some(&Password::new(&b"correct horse battery stapler"[..])), None).await.unwrap_err();
    assert!(matches!(err, BackupError::WrongPassword), "{err:?}");
    assert_eq!(err.to_string(), "wrong backup password: the keybag's class keys do not unwrap with it");
    // The oracle refuses the same password (so the packer did not make every password work).
    let script = r#"
import sys
from iphone_backup_decrypt import EncryptedBackup
from iphone_backup_decrypt.exceptions import IncorrectPassphraseError
try:
    EncryptedBackup(backup_directory=sys.argv[1], passphrase="correct horse battery stapler").test_decryption()
    print("opened")
except IncorrectPassphraseError:
    print("incorrect passphrase")
"#;
    let out = Command::new(&python).args(["-c", script, dir.path().to_str().unwrap()]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "incorrect passphrase", "{}", String::from_utf8_lossy(&out.stderr));
}
