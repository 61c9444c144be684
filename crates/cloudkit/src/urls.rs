//! Which URLs the client may send the account's data to. CloudKit requests carry the auth token,
//! anisette requests the device's identity, content downloads signed URLs and the files
//! themselves: over plain http any of them can be read or changed on the way. The simulator and a
//! local anisette server run on this machine, so http stays allowed there, and only there.

use crate::error::{Error, Result};

/// Refuses a URL that would carry the account's data or secrets off this machine unencrypted:
/// it must be https, or http to a loopback host (`localhost`, 127.0.0.0/8, `::1`; the simulator,
/// a local anisette server). `what` names the URL's role in the error.
pub fn check_url(url: &str, what: &str) -> Result<()> {
    let refuse = |why: &str| Err(Error::InsecureUrl { what: what.to_string(), url: url.to_string(), why: why.to_string() });
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return refuse(&format!("not a URL ({e})")),
    };
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => refuse("plain http is only for this machine (localhost, 127.0.0.1, ::1); use https"),
        other => refuse(&format!("the scheme {other:?} is not https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_on_this_machine() {
        for ok in [
            "https://gateway.icloud.com",
            "https://ani.example:8443/x",
            "http://127.0.0.1:1/_sim/anisette",
            "http://127.9.9.9",
            "http://localhost:8080",
            "http://[::1]:9/",
        ] {
            assert!(check_url(ok, "x").is_ok(), "{ok}");
        }
        for bad in [
            "http://gateway.icloud.com",
            "http://ani.example/",
            "http://10.0.0.1",
            "http://[::2]/",
            "http://localhost.evil.example",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            let err = check_url(bad, "the anisette server").expect_err(bad).to_string();
            assert!(err.contains("the anisette server"), "{err}");
        }
    }
}
