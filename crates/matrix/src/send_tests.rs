//! Uploads of attachments against a media repository on 127.0.0.1 that answers as it is told:
//! a failure for now fails the message (its room backs off and retries), a refusal for good
//! becomes a notice, and an upload's time limit grows with its size.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imessage::records::{AttachmentDetails, AttachmentRecord, RecordChange, ATTACHMENT_ZONE};
use serde_json::json;
use store::{FileOutcome, PageCommit, PageStats};

use crate::delivery::Deliverer;
use crate::delivery::{DeliveryConfig, DeliveryReport};
use crate::{HomeserverClient, MatrixError};

const TRANSFER_GUID: &str = "at_0_5C3B7E0A-1111-2222-3333-444455556666";

/// A homeserver whose uploads answer `status` (200: an mxc URI); counts the uploads.
struct MediaRepo {
    url: String,
    status: Arc<AtomicU16>,
    uploads: Arc<AtomicUsize>,
}

async fn media_repo() -> MediaRepo {
    let (status, uploads) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicUsize::new(0)));
    let (s, u) = (status.clone(), uploads.clone());
    let app = axum::Router::new()
        .route("/_matrix/client/v1/media/config", axum::routing::get(|| async { axum::Json(json!({ "m.upload.size": 50_000_000 })) }))
        .route(
            "/_matrix/media/v3/upload",
            axum::routing::post(move |_body: bytes::Bytes| async move {
                u.fetch_add(1, Ordering::Relaxed);
                let status = axum::http::StatusCode::from_u16(s.load(Ordering::Relaxed)).unwrap();
                let body = match status.as_u16() {
                    200 => json!({ "content_uri": "mxc://test/file" }),
                    413 => json!({ "errcode": "M_TOO_LARGE", "error": "file too large" }),
                    _ => json!({ "errcode": "M_UNKNOWN", "error": "try later" }),
                };
                (status, axum::Json(body))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    MediaRepo { url, status, uploads }
}

/// A deliverer whose store holds one stored attachment file (a small PDF-named blob: no media
/// tool touches it).
async fn deliverer(dir: &std::path::Path, hs: &str) -> Deliverer {
    let store: Arc<dyn store::Store> = Arc::from(store::open(&format!("sqlite:{}", dir.join("s.db").display())).await.unwrap());
    let bytes = b"%PDF-1.4 not much of a document".to_vec();
    let record = AttachmentRecord {
        record_name: "att-1".into(),
        guid: TRANSFER_GUID.into(),
        mime_type: Some("application/pdf".into()),
        filename: Some("~/Library/Messages/Attachments/x/notes.pdf".into()),
        total_bytes: bytes.len() as i64,
        asset_size: Some(bytes.len() as u64),
        details: AttachmentDetails { transfer_name: Some("notes.pdf".into()), ..Default::default() },
    };
    let page =
        PageCommit { zone: ATTACHMENT_ZONE.into(), token: None, stats: PageStats::default(), changes: vec![RecordChange::Attachment(record)], failed: vec![] };
    store.commit_page(&page).await.unwrap();
    let sha = "ab".repeat(32);
    let files = dir.join("files");
    std::fs::create_dir_all(files.join("ab")).unwrap();
    std::fs::write(files.join("ab").join(&sha), &bytes).unwrap();
    store.record_file("att-1", &FileOutcome::Stored { sha256: sha, bytes: bytes.len() as i64 }).await.unwrap();
    let config = DeliveryConfig {
        domain: "test".into(),
        owner: "@you:test".into(),
        double_puppet: false,
        own_handles: vec![],
        concurrency: 1,
        room_version: None,
        attachments_dir: files,
        media: Default::default(),
    };
    Deliverer::new(HomeserverClient::new(hs, "token").unwrap(), store, config)
}

#[tokio::test]
async fn an_upload_that_fails_for_now_fails_the_message_and_one_refused_for_good_is_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let repo = media_repo().await;
    let d = deliverer(dir.path(), &repo.url).await;
    for status in [503, 429, 502] {
        repo.status.store(status, Ordering::Relaxed);
        let mut report = DeliveryReport::default();
        match d.attachment_content("@ghost:test", TRANSFER_GUID, &mut report).await {
            Err(e @ MatrixError::Api { .. }) => assert!(e.is_transient(), "{status}: {e}"),
            other => panic!("{status}: the room should back off and retry, got {other:?}"),
        }
        assert_eq!(report.attachment_notices, 0, "{status}: no notice for a failure that passes");
    }
    // The homeserver comes back: the same file goes up.
    repo.status.store(200, Ordering::Relaxed);
    let mut report = DeliveryReport::default();
    let content = d.attachment_content("@ghost:test", TRANSFER_GUID, &mut report).await.unwrap();
    assert_eq!((content["url"].as_str(), report.attachments), (Some("mxc://test/file"), 1), "{content}");
    // Refused for good: a notice saying so, and the room goes on.
    repo.status.store(413, Ordering::Relaxed);
    let before = repo.uploads.load(Ordering::Relaxed);
    let mut report = DeliveryReport::default();
    let notice = d.attachment_content("@ghost:test", TRANSFER_GUID, &mut report).await.unwrap();
    assert_eq!(repo.uploads.load(Ordering::Relaxed), before + 1, "a refusal is not retried");
    assert_eq!((notice["msgtype"].as_str(), report.attachment_notices), (Some("m.notice"), 1));
    let body = notice["body"].as_str().unwrap();
    assert!(body.contains("notes.pdf") && body.contains("refused it (413 M_TOO_LARGE)"), "{body}");
}

#[test]
fn an_uploads_time_limit_grows_with_its_size() {
    use crate::client::upload_timeout;
    assert_eq!(upload_timeout(0), Duration::from_secs(120));
    assert_eq!(upload_timeout(1), Duration::from_secs(121));
    assert_eq!(upload_timeout(600_000_000), Duration::from_secs(720));
    assert_eq!(upload_timeout(u64::MAX), Duration::from_secs(120) + Duration::from_secs(u64::MAX.div_ceil(1_000_000)));
    // The request carries it (it overrides the client's 120 s for this request only).
    let hs = HomeserverClient::new("http://127.0.0.1:9", "t").unwrap();
    let req = hs.upload_request("http://127.0.0.1:9/_matrix/media/v3/upload", "@u:test", "video/mp4", "big.mp4", 2_000_000_000).build().unwrap();
    assert_eq!(req.timeout(), Some(&Duration::from_secs(2120)));
}
