//! Outside oracles for the tests: Python's `phonenumbers` (Google's libphonenumber metadata) for
//! the E.164 form of a written number, and `vobject` as a second vCard parser. Both are
//! installed into the project's venv by `scripts/install-test-python.sh`; the venv is
//! `$IMB_VENV` or `<repo>/.venv`.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The venv's python with `module` importable, or a failure saying how to get it.
pub fn python_with(module: &str) -> PathBuf {
    let venv = std::env::var_os("IMB_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    let ok = Command::new(&python).args(["-c", &format!("import {module}")]).status().is_ok_and(|s| s.success());
    assert!(ok, "{} cannot import {module}: run scripts/install-test-python.sh (or set IMB_VENV) to install it into the venv", python.display());
    python
}

/// Runs `script` with `input` as JSON on stdin and returns its stdout parsed as JSON.
pub fn run_python(module: &str, script: &str, input: &serde_json::Value) -> serde_json::Value {
    let python = python_with(module);
    let mut child =
        Command::new(python).args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting python");
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("writing to python");
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python's JSON")
}

/// The E.164 form of each (written number, region) by Python's `phonenumbers`.
pub fn e164(numbers: &[(&str, &str)]) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys, phonenumbers
out = []
for written, region in json.load(sys.stdin):
    n = phonenumbers.parse(written, region)
    out.append(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164))
print(json.dumps(out))
"#;
    let value = run_python("phonenumbers", SCRIPT, &serde_json::json!(numbers));
    serde_json::from_value(value).expect("a list of strings")
}

/// A small JPEG-looking image (the magic is what the readers sniff).
pub fn jpeg(seed: u8) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0];
    b.extend((0..200u16).map(|i| (i as u8).wrapping_mul(seed)));
    b.extend([0xFF, 0xD9]);
    b
}

/// A small PNG-looking image.
pub fn png(seed: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend((0..100u16).map(|i| (i as u8) ^ seed));
    b
}
