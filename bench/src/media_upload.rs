//! Media upload throughput on its own: what the media repository takes per second from the
//! bridge's client, for many small photos (uploaded from memory, as converted files are) and
//! for large videos (streamed from disk, as big files are). Random bytes, so nothing compresses.

use std::time::Instant;

use anyhow::Result;
use matrix::HomeserverClient;

/// One row: what was uploaded, how many files, how many bytes, seconds.
pub struct Row {
    pub what: &'static str,
    pub files: u64,
    pub bytes: u64,
    pub secs: f64,
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Uploads 40 files of 1 MiB from memory and 3 files of 40 MiB from disk (under Synapse's default 50 MiB upload limit) as `user`.
pub async fn measure(hs: &HomeserverClient, user: &str, dir: &std::path::Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let small: Vec<bytes::Bytes> = (0..40).map(|i| bytes::Bytes::from(noise(1 << 20, i))).collect();
    let started = Instant::now();
    for (i, b) in small.iter().enumerate() {
        hs.upload(user, b.clone(), "image/jpeg", &format!("photo-{i}.jpg")).await?;
    }
    rows.push(Row { what: "1 MiB photos, from memory", files: small.len() as u64, bytes: 40 << 20, secs: started.elapsed().as_secs_f64() });
    let mut paths = Vec::new();
    for i in 0..3u64 {
        let path = dir.join(format!("video-{i}.mov"));
        std::fs::write(&path, noise(40 << 20, 100 + i))?;
        paths.push(path);
    }
    let started = Instant::now();
    for (i, p) in paths.iter().enumerate() {
        hs.upload_file(user, p, "video/quicktime", &format!("video-{i}.mov")).await?;
    }
    rows.push(Row { what: "40 MiB videos, streamed from disk", files: 3, bytes: 3 * (40 << 20), secs: started.elapsed().as_secs_f64() });
    Ok(rows)
}
