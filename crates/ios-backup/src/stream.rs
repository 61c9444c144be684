//! Streaming AES-256-CBC decryption of one backup blob (zero IV, PKCS7), in fixed chunks so a
//! multi-gigabyte video never sits in memory.
//!
//! The last decrypted block is held back until the end of the blob is seen, because it carries
//! the padding. Damage (a length that is not a multiple of 16, bad padding) surfaces as an
//! `io::Error` of kind `InvalidData` carrying a [`Damage`], which the caller turns into a named
//! per-file error.

use std::io::{self, Read};

use aes::cipher::{BlockDecryptMut, KeyIvInit};
use aes::Aes256;

/// Ciphertext read and decrypted per step: large enough for the AES pipeline and the read
/// syscalls to be cheap, small enough to stay in cache.
const CHUNK: usize = 256 * 1024;
const BLOCK: usize = 16;

/// Why a blob's bytes are not a valid encrypted file.
#[derive(Debug)]
pub(crate) struct Damage(pub String);

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Damage {}

fn damage(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Damage(msg))
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decrypts a blob read from `R`.
pub(crate) struct Decryptor<R> {
    inner: R,
    cipher: cbc::Decryptor<Aes256>,
    /// `[held block (16)][chunk (CHUNK)]`.
    buf: Box<[u8]>,
    /// Where the held-back last block is, if any.
    held_at: Option<usize>,
    /// The decrypted bytes ready for the reader: `buf[start..end]`.
    start: usize,
    end: usize,
    finished: bool,
    /// Plaintext bytes released so far.
    released: u64,
    /// The size `Manifest.db` records for the file: used only when the padding is not PKCS7
    /// (older iOS) and the size falls inside the last block.
    size: Option<u64>,
}

impl<R: Read> Decryptor<R> {
    pub fn new(inner: R, key: &[u8; 32], size: Option<u64>) -> Self {
        Decryptor {
            inner,
            cipher: cbc::Decryptor::<Aes256>::new(key.into(), &[0u8; BLOCK].into()),
            buf: vec![0u8; BLOCK + CHUNK].into_boxed_slice(),
            held_at: None,
            start: 0,
            end: 0,
            finished: false,
            released: 0,
            size,
        }
    }

    /// The next decrypted bytes; `None` at the end.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        while self.start == self.end {
            if self.finished {
                return Ok(None);
            }
            self.refill()?;
        }
        let (start, end) = (self.start, self.end);
        self.start = end;
        self.released += (end - start) as u64;
        Ok(Some(&self.buf[start..end]))
    }

    fn refill(&mut self) -> io::Result<()> {
        if let Some(at) = self.held_at {
            self.buf.copy_within(at..at + BLOCK, 0);
            self.held_at = Some(0);
        }
        let n = read_full(&mut self.inner, &mut self.buf[BLOCK..])?;
        if n % BLOCK != 0 {
            return Err(damage(format!("encrypted length is not a multiple of 16 ({} bytes left over)", n % BLOCK)));
        }
        if n == 0 {
            return self.finish();
        }
        let (blocks, _) = aes::cipher::inout::InOutBuf::from(&mut self.buf[BLOCK..BLOCK + n]).into_chunks();
        self.cipher.decrypt_blocks_inout_mut(blocks);
        // Release everything but the new last block, after the previously held one.
        self.start = if self.held_at.is_some() { 0 } else { BLOCK };
        self.end = n;
        self.held_at = Some(n);
        Ok(())
    }

    /// The end of the ciphertext: strip the padding from the held block.
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        let Some(at) = self.held_at.take() else {
            return Err(damage("the encrypted blob is empty (not even a padding block)".into()));
        };
        let last = &self.buf[at..at + BLOCK];
        let pad = last[BLOCK - 1] as usize;
        let keep = if (1..=BLOCK).contains(&pad) && last[BLOCK - pad..].iter().all(|&b| b as usize == pad) {
            BLOCK - pad
        } else {
            // No PKCS7 padding: acceptable only where the recorded size ends inside this block.
            match self.size.and_then(|s| s.checked_sub(self.released)) {
                Some(k) if (1..=BLOCK as u64).contains(&k) => k as usize,
                _ => return Err(damage(format!("bad padding after {} bytes (truncated or wrong key)", self.released))),
            }
        };
        self.start = at;
        self.end = at + keep;
        Ok(())
    }

    /// Plaintext bytes released so far (the file's size once `next_chunk` returned `None`).
    pub fn released(&self) -> u64 {
        self.released
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let Some(chunk) = self.next_chunk()? else { return Ok(0) };
        let n = chunk.len().min(out.len());
        out[..n].copy_from_slice(&chunk[..n]);
        // Give back what did not fit.
        let unread = (chunk.len() - n) as u64;
        self.start -= unread as usize;
        self.released -= unread;
        Ok(n)
    }
}

/// The damage carried by an error from [`Decryptor`], if that is what it is.
pub(crate) fn damage_of(e: &io::Error) -> Option<&Damage> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Damage>())
}
