//! How the simulator writes the records it serves: `MessageEncryptedV3`, `chatEncryptedv2`,
//! `attachment` and `MessagesSummary`, as a Messages client saves them to CloudKit.
//!
//! This is the simulator's own encoder, written from the record layouts OpenBubbles/rustpush
//! documents (`cloud_messages.rs`, `cloudkit.rs`), not from the bridge's decoder: encrypted
//! strings and integers are the protobuf `Record.Field.EncryptedValue` under the field cipher,
//! with value type STRING/INT64 and `isEncrypted`; bytes are ENCRYPTED_BYTES; `msgProto` and `cm`
//! are gzipped before encryption; participants are one binary plist per handle; `time` is
//! nanoseconds since 2001-01-01. A record under the zone's record keys names its key in
//! `pcsKey`; a record with its own `protectionInfo` carries that instead.

use cloudkit::proto::{self, value_type, FieldValue, Record};
use cloudkit::records::{AttachmentRecord, ChatRecord, MessageRecord};
use prost::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::pcs::{PcsError, RecordKey};
use crate::wire::gzip_stored;

/// Seconds from the Unix epoch to Apple's (2001-01-01T00:00:00Z).
const APPLE_EPOCH_UNIX_MS: i64 = 978_307_200_000;

/// The record types of the Messages zones.
pub const MESSAGE_TYPE: &str = "MessageEncryptedV3";
pub const CHAT_TYPE: &str = "chatEncryptedv2";
pub const ATTACHMENT_TYPE: &str = "attachment";
pub const SUMMARY_TYPE: &str = "MessagesSummary";

/// How a record's fields are keyed: by the zone's record key (named in `pcsKey`), or by a key of
/// the record's own `protectionInfo` (no `pcsKey`).
pub enum Keying<'a> {
    Zone(&'a RecordKey),
    Own { key: &'a RecordKey, protection_info: &'a [u8], tag: &'a str },
}

/// Builds one record field by field; the first encryption error is kept and returned by
/// [`Writer::finish`].
struct Writer<'a> {
    zone: &'a str,
    name: &'a str,
    key: &'a RecordKey,
    record: Record,
    error: Option<PcsError>,
}

impl<'a> Writer<'a> {
    fn new(zone: &'a str, owner: &str, name: &'a str, record_type: &str, keying: &Keying<'a>) -> Self {
        let mut record = Record {
            etag: Some("1".into()),
            record_identifier: Some(record_id(zone, owner, name)),
            r#type: Some(proto::RecordType { name: Some(record_type.to_string()) }),
            ..Default::default()
        };
        match keying {
            Keying::Zone(k) => record.pcs_key = Some(k.short_id().to_vec()),
            Keying::Own { protection_info, tag, .. } => {
                record.protection_info =
                    Some(proto::ProtectionInfo { protection_info: Some(protection_info.to_vec()), protection_info_tag: Some(tag.to_string()) })
            }
        }
        let key = match keying {
            Keying::Zone(k) | Keying::Own { key: k, .. } => *k,
        };
        Writer { zone, name, key, record, error: None }
    }

    /// Encrypts a field value. The IV is a digest of the key, the field's place and the value,
    /// so serving the same record twice gives the same bytes, and a record served again with
    /// other content (`--revise`) never reuses an IV under the key.
    fn seal(&mut self, field: &str, plain: &[u8]) -> Vec<u8> {
        let context = format!("{}-{}-{}", self.zone, self.name, field);
        let digest = Sha256::new().chain_update(self.key.raw()).chain_update(context.as_bytes()).chain_update(plain).finalize();
        let mut iv = [0u8; 12];
        iv.copy_from_slice(&digest[..12]);
        match self.key.encrypt(plain, context.as_bytes(), iv) {
            Ok(sealed) => sealed,
            Err(e) => {
                self.error.get_or_insert(e);
                Vec::new()
            }
        }
    }

    fn push(&mut self, field: &str, value: FieldValue) -> &mut Self {
        self.record.record_field.push(proto::RecordField { identifier: Some(proto::FieldIdentifier { name: Some(field.to_string()) }), value: Some(value) });
        self
    }

    fn sealed_value(&mut self, field: &str, ty: i32, value: proto::EncryptedValue) -> &mut Self {
        let bytes = self.seal(field, &value.encode_to_vec());
        self.push(field, FieldValue { r#type: Some(ty), bytes_value: Some(bytes), is_encrypted: Some(true), ..Default::default() })
    }

    fn string(&mut self, field: &str, value: &str) -> &mut Self {
        self.sealed_value(field, value_type::STRING, proto::EncryptedValue { string_value: Some(value.to_string()), ..Default::default() })
    }

    fn int(&mut self, field: &str, value: i64) -> &mut Self {
        self.sealed_value(field, value_type::INT64, proto::EncryptedValue { signed_value: Some(value), ..Default::default() })
    }

    fn sealed_bytes(&mut self, field: &str, plain: &[u8]) -> FieldValue {
        FieldValue { r#type: Some(value_type::ENCRYPTED_BYTES), bytes_value: Some(self.seal(field, plain)), is_encrypted: Some(true), ..Default::default() }
    }

    fn bytes(&mut self, field: &str, plain: &[u8]) -> &mut Self {
        let value = self.sealed_bytes(field, plain);
        self.push(field, value)
    }

    fn bytes_list(&mut self, field: &str, items: &[Vec<u8>]) -> &mut Self {
        let list_values = items.iter().map(|p| self.sealed_bytes(field, p)).collect();
        self.push(field, FieldValue { r#type: Some(value_type::ENCRYPTED_BYTES_LIST), list_values, ..Default::default() })
    }

    fn modified(&mut self, unix_ms: i64) -> &mut Self {
        let date = proto::Date { time: Some((unix_ms - APPLE_EPOCH_UNIX_MS) as f64 / 1000.0) };
        self.record.time_statistics = Some(proto::DateStatistics { creation: Some(date.clone()), modification: Some(date) });
        self
    }

    fn finish(&mut self) -> Result<Record, PcsError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut self.record)),
        }
    }
}

fn record_id(zone: &str, owner: &str, name: &str) -> proto::RecordIdentifier {
    proto::RecordIdentifier {
        value: Some(proto::Identifier { name: Some(name.to_string()), r#type: Some(proto::identifier_type::RECORD) }),
        zone_identifier: Some(proto::zone_id(zone, owner)),
    }
}

/// A deletion in a change feed: the identifier without a record.
pub fn deletion(zone: &str, owner: &str, name: &str) -> proto::RecordChange {
    proto::RecordChange { identifier: Some(record_id(zone, owner, name)), ..Default::default() }
}

/// Unix milliseconds as the `time` field's nanoseconds since 2001-01-01.
fn apple_ns(unix_ms: i64) -> i64 {
    (unix_ms - APPLE_EPOCH_UNIX_MS).saturating_mul(1_000_000)
}

/// The content blobs a message carries in its `msgProto` besides the text (the simulator's own
/// encoders in [`crate::content`] make them, or `--apple-blobs` serves real ones as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentBlobs {
    pub attributed_body: Option<Vec<u8>>,
    pub payload_data: Option<Vec<u8>>,
    pub message_summary_info: Option<Vec<u8>>,
    pub balloon_bundle_id: Option<String>,
    pub effect: Option<String>,
}

pub fn message(zone: &str, owner: &str, keying: &Keying<'_>, m: &MessageRecord, blobs: &ContentBlobs) -> Result<Record, PcsError> {
    let body = proto::MessageProto {
        unk1: Some(1),
        subject: m.subject.clone(),
        text: m.text.clone(),
        attributed_body: blobs.attributed_body.clone(),
        balloon_bundle_id: blobs.balloon_bundle_id.clone(),
        payload_data: blobs.payload_data.clone(),
        message_summary_info: blobs.message_summary_info.clone(),
        effect: blobs.effect.clone(),
        associated_message_type: m.associated_type,
        associated_message_guid: m.associated_guid.clone(),
        ..Default::default()
    };
    let mut w = Writer::new(zone, owner, &m.record_name, MESSAGE_TYPE, keying);
    w.string("chatID", &m.chat_id)
        .string("sender", &m.sender)
        .int("time", apple_ns(m.ts_ms))
        .string("guid", &m.guid)
        .int("flags", m.flags as i64)
        .bytes("msgProto", &gzip_stored(&body.encode_to_vec()));
    if let Some(svc) = &m.service {
        w.string("svc", svc);
    }
    if let Some(reply) = &m.content.reply_to {
        let extra = proto::MessageProto2 { reply: Some(reply.clone()) };
        w.bytes("msgProto2", &gzip_stored(&extra.encode_to_vec()));
    }
    if let Some(emoji) = &m.content.associated_emoji {
        let extra = proto::MessageProto4 { associated_message_emoji: Some(emoji.clone()), service: m.service.clone(), group_id: None };
        w.bytes("msgProto4", &gzip_stored(&extra.encode_to_vec()));
    }
    w.finish()
}

fn binary_plist(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    // Plain structs of strings and integers always serialize into memory.
    let _ = plist::to_writer_binary(&mut out, value);
    out
}

#[derive(Serialize)]
struct Participant<'a> {
    #[serde(rename = "FZPersonID")]
    person_id: &'a str,
}

pub fn chat(zone: &str, owner: &str, keying: &Keying<'_>, c: &ChatRecord) -> Result<Record, PcsError> {
    let participants: Vec<Vec<u8>> = c.participants.iter().map(|p| binary_plist(&Participant { person_id: p })).collect();
    let mut w = Writer::new(zone, owner, &c.record_name, CHAT_TYPE, keying);
    w.int("stl", c.style).string("cid", &c.chat_id).bytes_list("ptcpts", &participants).modified(c.modified_ms);
    if let Some(gid) = &c.group_id {
        w.string("gid", gid);
    }
    if let Some(name) = &c.display_name {
        w.string("name", name);
    }
    if let Some(svc) = &c.service {
        w.string("svc", svc);
    }
    w.finish()
}

/// Attachment metadata `cm` with the keys Messages writes (rustpush `AttachmentMeta`).
#[derive(Serialize)]
struct AttachmentMeta<'a> {
    aguid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mimet: Option<&'a str>,
    #[serde(rename = "fn", skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
    tb: i64,
    sdt: i64,
    cdt: i64,
    st: i64,
    #[serde(rename = "is")]
    is_sticker: bool,
    ha: bool,
    ig: bool,
    vers: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pathc: Option<&'a str>,
}

/// The `lqa` asset of an attachment record: the sealed file's identity, its size, and its FORD
/// key sealed by the record key under `lqa-{b64 signature}-{b64 referenceSignature}`.
pub struct AssetField<'a> {
    pub signature: &'a [u8],
    pub reference_signature: &'a [u8],
    pub ford_key: &'a [u8],
    pub size: u64,
}

pub fn attachment(zone: &str, owner: &str, keying: &Keying<'_>, a: &AttachmentRecord, asset: Option<&AssetField<'_>>) -> Result<Record, PcsError> {
    let d = &a.details;
    let meta = AttachmentMeta {
        aguid: &a.guid,
        mimet: a.mime_type.as_deref(),
        filename: a.filename.as_deref(),
        tb: a.total_bytes,
        sdt: d.start_date,
        cdt: d.created_date,
        st: d.transfer_state,
        is_sticker: d.is_sticker,
        ha: d.hide_attachment,
        ig: d.is_outgoing,
        vers: d.version,
        t: d.uti.as_deref(),
        tn: d.transfer_name.as_deref(),
        pathc: d.transfer_name.as_deref(),
    };
    let mut w = Writer::new(zone, owner, &a.record_name, ATTACHMENT_TYPE, keying);
    w.bytes("cm", &gzip_stored(&binary_plist(&meta)));
    if let Some(asset) = asset {
        use base64::{engine::general_purpose::STANDARD as B64, Engine};
        let field = format!("lqa-{}-{}", B64.encode(asset.signature), B64.encode(asset.reference_signature));
        let sealed_key = w.seal(&field, asset.ford_key);
        let value = proto::Asset {
            owner: Some(owner.to_string()),
            signature: Some(asset.signature.to_vec()),
            size: Some(asset.size),
            record_id: Some(record_id(zone, owner, &a.record_name)),
            protection_info: Some(proto::ProtectionInfo { protection_info: Some(sealed_key), protection_info_tag: None }),
            reference_signature: Some(asset.reference_signature.to_vec()),
            ..Default::default()
        };
        w.push("lqa", FieldValue { r#type: Some(value_type::ASSET), asset_value: Some(value), ..Default::default() });
    }
    w.finish()
}

/// A record of a type the bridge does not know (Apple's zones hold more than three types; a
/// client skips them).
pub fn foreign(zone: &str, owner: &str, keying: &Keying<'_>, name: &str, record_type: &str) -> Result<Record, PcsError> {
    let mut w = Writer::new(zone, owner, name, record_type, keying);
    w.string("note", "a record type the bridge does not read");
    w.finish()
}

/// The plain `MessagesSummary` record the server answers count queries with: an INT64_LIST
/// named after the counted record type.
pub fn summary(zone: &str, owner: &str, record_type: &str, counts: &[i64]) -> Record {
    let mut record = Record {
        record_identifier: Some(record_id(zone, owner, SUMMARY_TYPE)),
        r#type: Some(proto::RecordType { name: Some(SUMMARY_TYPE.into()) }),
        ..Default::default()
    };
    let list_values = counts.iter().map(|&n| FieldValue { r#type: Some(value_type::INT64), signed_value: Some(n), ..Default::default() }).collect();
    record.record_field.push(proto::RecordField {
        identifier: Some(proto::FieldIdentifier { name: Some(record_type.to_string()) }),
        value: Some(FieldValue { r#type: Some(value_type::INT64_LIST), list_values, ..Default::default() }),
    });
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_time_is_nanoseconds_since_2001() {
        assert_eq!(apple_ns(APPLE_EPOCH_UNIX_MS), 0);
        assert_eq!(apple_ns(APPLE_EPOCH_UNIX_MS + 1500), 1_500_000_000);
        // 2015-01-01 is 441 763 200 s after 2001-01-01.
        assert_eq!(apple_ns(1_420_070_400_000), 441_763_200 * 1_000_000_000);
    }

    #[test]
    fn fields_are_sealed_as_apple_types_and_keyed_by_pcs_key() {
        let key = RecordKey::new([7; 16]);
        let m = MessageRecord {
            record_name: "M1".into(),
            guid: "G".into(),
            chat_id: "c".into(),
            sender: "s".into(),
            flags: 4,
            ts_ms: APPLE_EPOCH_UNIX_MS,
            text: Some("hi".into()),
            subject: None,
            associated_type: None,
            associated_guid: None,
            service: None,
            content: Default::default(),
        };
        let r = message("messageManateeZone", "_u", &Keying::Zone(&key), &m, &ContentBlobs::default()).unwrap();
        assert_eq!(r.pcs_key.as_deref(), Some(&key.short_id()[..]));
        assert!(r.protection_info.is_none());
        let guid = r.field("guid").unwrap();
        assert_eq!(guid.r#type, Some(value_type::STRING));
        assert_eq!(guid.is_encrypted, Some(true));
        let ct = guid.bytes_value.as_ref().unwrap();
        assert_eq!(ct[0], 3);
        assert_eq!([ct[1], ct[2], ct[4], ct[5]], key.short_id());
        assert_eq!(r.field("msgProto").unwrap().r#type, Some(value_type::ENCRYPTED_BYTES));
        let own = message("messageManateeZone", "_u", &Keying::Own { key: &key, protection_info: b"pi", tag: "T" }, &m, &ContentBlobs::default()).unwrap();
        assert!(own.pcs_key.is_none());
        assert_eq!(own.protection_info.unwrap().protection_info_tag.as_deref(), Some("T"));
    }
}
