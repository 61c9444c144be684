//! Remote PostgreSQL is encrypted: the store's `postgres://` URIs honour `sslmode` (`require`,
//! `verify-full` with `sslrootcert=`), against a real server with `ssl=on` and a throwaway CA
//! (see `support`). The server itself says whether a connection is encrypted
//! (`pg_stat_ssl`), so the check does not trust the client's word.

mod support;

use sqlx::{Connection, PgConnection};

const IS_ENCRYPTED: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

async fn encrypted(uri: &str) -> Result<bool, sqlx::Error> {
    let mut conn = PgConnection::connect(uri).await?;
    let ssl: bool = sqlx::query_scalar(IS_ENCRYPTED).fetch_one(&mut conn).await?;
    let _ = conn.close().await;
    Ok(ssl)
}

#[tokio::test]
async fn verify_full_with_the_servers_root_is_encrypted_and_the_store_opens() {
    let uri = support::fresh_database().await;
    let ca = &support::server().await.tls.ca;
    let uri = format!("{uri}?sslmode=verify-full&sslrootcert={}", ca.display());
    assert!(encrypted(&uri).await.expect("verify-full with the right root connects"));
    // The store's own pool takes the same URI (and migrates over TLS).
    let store = store::open(&uri).await.expect("store opens over verify-full");
    assert!(store.zone_states().await.expect("read over TLS").is_empty());
}

#[tokio::test]
async fn verify_full_with_a_wrong_root_fails() {
    let uri = support::fresh_database().await;
    let wrong = &support::server().await.tls.wrong_ca;
    let uri = format!("{uri}?sslmode=verify-full&sslrootcert={}", wrong.display());
    let err = encrypted(&uri).await.expect_err("a certificate the given root did not sign is refused");
    // rustls's verdict (sqlx wraps it as an I/O error): the server's chain does not lead to the root.
    assert!(format!("{err:?}").contains("UnknownIssuer"), "a certificate error, not {err:?}");
    assert!(store::open(&uri).await.is_err(), "the store refuses it too");
}

#[tokio::test]
async fn require_and_the_default_encrypt_and_disable_does_not() {
    let uri = support::fresh_database().await;
    assert!(encrypted(&format!("{uri}?sslmode=require")).await.expect("require connects"));
    // No sslmode is `prefer`: with TLS compiled in it must not fall back to plaintext.
    assert!(encrypted(&uri).await.expect("prefer connects"));
    // The oracle can say no: the same server, TLS turned off by the client.
    assert!(!encrypted(&format!("{uri}?sslmode=disable")).await.expect("disable connects"));
}
