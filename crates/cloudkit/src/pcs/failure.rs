//! Why a layer of the PCS key chain did not open.
//!
//! Why a leaf module: the crate's error names these failures ([`crate::Error::Protection`]) and
//! every layer (`protection`, `ec`, `identity`) returns them; apart from all of them, the error
//! does not import the code that fails.

/// Why a PCS protection (or a key for one) could not be opened. [`crate::Error::Protection`] adds the
/// layer it happened at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectionFailure {
    /// Not the DER shape of the object (strict DER: see the module docs of `protection`).
    #[error("malformed DER: {0}")]
    Der(String),
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(&'static str),
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// The x stored with a private key (or its embedded public key) is not that of its scalar.
    #[error("private key does not belong to the public key {x} stored with it")]
    PrivateKeyMismatch { x: String },
    /// None of our keys is named by a keyset entry; `x` is the entry rustpush reports (the first
    /// in its key order), normally the key the account should hold.
    #[error("none of our keys opens this protection: it is for {x}")]
    DecodeKeyNotFound { x: String },
    /// The AES key-wrap integrity check failed: the entry names our x but our scalar is not the
    /// one it was wrapped for, or the entry is corrupted.
    #[error("key unwrap failed the AES key-wrap integrity check (wrong private key or corrupted entry)")]
    KeyUnwrap,
    /// The wrapped-key envelope or the unwrapped message is malformed (framing, padding, sum).
    #[error("wrapped key is malformed: {0}")]
    WrappedKey(&'static str),
    #[error("unsupported protection version {0} (expected 4 or 5)")]
    UnsupportedVersion(u32),
    #[error("outer signature {reason}")]
    OuterSignature { reason: SignatureFailure },
    /// Neither the self-signature nor `signature_2` verifies with the object key.
    #[error("self-signature does not verify with the object key")]
    SelfSignature,
    #[error("owner signature (attribute 7) {reason}")]
    OwnerSignature { reason: SignatureFailure },
    #[error("truncated key id {stored} is not the master key's {computed}")]
    TruncatedKeyId { stored: String, computed: String },
    #[error("HMAC does not match")]
    Mac,
    /// The encrypted identities (`meta`) do not decrypt or do not parse.
    #[error("meta: {0}")]
    Meta(String),
    /// A keychain identity without a signed public part (`PCSPublicKey` with `[1]`): Apple's
    /// items carry one and rustpush refuses (panics on) an identity that lacks it.
    #[error("identity is unsigned: its PCSPublicKey has no [1] signature")]
    IdentityUnsigned,
    /// The identity's signature names a known signer (itself or a given key) and fails.
    #[error("identity signature {reason}")]
    IdentitySignature { reason: SignatureFailure },
}

/// Why one signature of a protection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// The signature names a signer (by x) that is not the verifying key.
    #[error("is by {keyid}, not by the verifying key {key}")]
    KeyMismatch { keyid: String, key: String },
    #[error("does not verify")]
    Invalid,
    #[error("uses digest {0} (only 1, SHA-256, is known)")]
    UnsupportedDigest(u32),
}
