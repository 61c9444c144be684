//! Reading an HTTP response body under a cap.
//!
//! Why a leaf module: the CloudKit client and the anisette fetch both read bodies this way;
//! apart from both, neither imports the other for it.

use crate::framing::extend_capped;

/// Why a capped body read stopped.
pub(crate) enum BodyRead {
    Transport(reqwest::Error),
    /// The body (or its stated `Content-Length`) is over the cap; nothing past it was read.
    TooLarge,
}

/// Reads a response body of at most `cap` bytes, holding no buffer larger than that.
pub(crate) async fn read_capped(mut response: reqwest::Response, cap: usize) -> std::result::Result<Vec<u8>, BodyRead> {
    let stated = response.content_length().unwrap_or(0);
    if stated > cap as u64 {
        return Err(BodyRead::TooLarge);
    }
    let mut body = Vec::with_capacity(stated as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyRead::Transport)? {
        if !extend_capped(&mut body, &chunk, cap) {
            return Err(BodyRead::TooLarge);
        }
    }
    Ok(body)
}
