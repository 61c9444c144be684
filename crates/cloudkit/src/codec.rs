//! Conversion between CloudKit `Record`s and the typed iMessage records of [`crate::records`].
//!
//! Decoding is what the bridge does with every synced record: pick the record key by `pcsKey`,
//! decrypt each field with its `"{zone}-{record}-{field}"` context, unwrap the inner value
//! (`EncryptedValue` for strings/ints, gzip+protobuf for `msgProto`, binary plists for
//! participants and attachment metadata). Encoding ([`RecordBuilder`]) is the same path backwards;
//! the simulator serves what it builds, and the round-trip tests pin both directions together.

use std::io::Cursor;

use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::framing::{gunzip, gzip};
use crate::pcs::{hex, KeyRing, PcsKey};
use crate::proto::{self, value_type, FieldValue, Record};
use crate::records::*;

const APPLE_EPOCH_SECS_F: f64 = APPLE_EPOCH_UNIX_SECS as f64;

fn apple_secs_to_unix_ms(secs: f64) -> i64 {
    ((secs + APPLE_EPOCH_SECS_F) * 1000.0).round() as i64
}

fn unix_ms_to_apple_secs(ms: i64) -> f64 {
    ms as f64 / 1000.0 - APPLE_EPOCH_SECS_F
}

/// Participant entry of `ptcpts` (binary plist).
#[derive(Debug, Serialize, Deserialize)]
struct Participant {
    #[serde(rename = "FZPersonID")]
    person_id: String,
}

/// Attachment metadata `cm` (gzipped binary plist); only the keys the bridge uses.
#[derive(Debug, Serialize, Deserialize)]
struct AttachmentMeta {
    aguid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mimet: Option<String>,
    #[serde(rename = "fn", default, skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    #[serde(default)]
    tb: i64,
}

/// Reads the fields of one record, decrypting with the zone's key ring.
struct FieldReader<'a> {
    zone: &'a str,
    record: &'a Record,
    record_name: &'a str,
    record_type: &'a str,
    ring: &'a KeyRing,
}

impl<'a> FieldReader<'a> {
    fn bad(&self, field: &'static str, detail: impl ToString) -> Error {
        Error::BadField {
            record_type: self.record_type.to_string(),
            record: self.record_name.to_string(),
            field,
            detail: detail.to_string(),
        }
    }

    fn missing(&self, field: &'static str) -> Error {
        Error::MissingField { record_type: self.record_type.to_string(), record: self.record_name.to_string(), field }
    }

    fn decrypt(&self, field: &'static str, ct: &[u8]) -> Result<Vec<u8>> {
        let context = format!("{}-{}-{}", self.zone, self.record_name, field);
        self.ring.decrypt(ct, &context)
    }

    /// An encrypted (or plain) scalar value's `EncryptedValue` form.
    fn scalar(&self, field: &'static str) -> Result<Option<proto::EncryptedValue>> {
        let Some(v) = self.record.field(field) else { return Ok(None) };
        if v.is_encrypted.unwrap_or(false) {
            let ct = v.bytes_value.as_deref().ok_or_else(|| self.bad(field, "encrypted value without bytes"))?;
            let plain = self.decrypt(field, ct)?;
            let ev = proto::EncryptedValue::decode(plain.as_slice()).map_err(|e| self.bad(field, e))?;
            Ok(Some(ev))
        } else {
            Ok(Some(proto::EncryptedValue {
                signed_value: v.signed_value,
                date_value: v.date_value.clone(),
                string_value: v.string_value.clone(),
            }))
        }
    }

    fn string(&self, field: &'static str) -> Result<Option<String>> {
        match self.scalar(field)? {
            None => Ok(None),
            Some(ev) => ev.string_value.map(Some).ok_or_else(|| self.bad(field, "not a string")),
        }
    }

    fn required_string(&self, field: &'static str) -> Result<String> {
        self.string(field)?.ok_or_else(|| self.missing(field))
    }

    fn int(&self, field: &'static str) -> Result<Option<i64>> {
        match self.scalar(field)? {
            None => Ok(None),
            Some(ev) => ev.signed_value.map(Some).ok_or_else(|| self.bad(field, "not an integer")),
        }
    }

    fn bytes_of(&self, field: &'static str, v: &FieldValue) -> Result<Vec<u8>> {
        let raw = v.bytes_value.as_deref().ok_or_else(|| self.bad(field, "no bytes"))?;
        if v.is_encrypted.unwrap_or(false) || v.r#type == Some(value_type::ENCRYPTED_BYTES) {
            self.decrypt(field, raw)
        } else {
            Ok(raw.to_vec())
        }
    }

    fn bytes(&self, field: &'static str) -> Result<Option<Vec<u8>>> {
        match self.record.field(field) {
            None => Ok(None),
            Some(v) => self.bytes_of(field, v).map(Some),
        }
    }

    fn bytes_list(&self, field: &'static str) -> Result<Vec<Vec<u8>>> {
        match self.record.field(field) {
            None => Ok(Vec::new()),
            Some(v) => v.list_values.iter().map(|item| self.bytes_of(field, item)).collect(),
        }
    }

    fn plist<T: for<'de> Deserialize<'de>>(&self, field: &'static str, data: &[u8]) -> Result<T> {
        plist::from_reader(Cursor::new(data)).map_err(|e| self.bad(field, format!("bad plist: {e}")))
    }

    fn modified_ms(&self) -> i64 {
        self.record
            .time_statistics
            .as_ref()
            .and_then(|t| t.modification.as_ref().or(t.creation.as_ref()))
            .and_then(|d| d.time)
            .map(apple_secs_to_unix_ms)
            .unwrap_or(0)
    }
}

/// Decodes one change of a `record/sync` page into a typed record. A change without a record is a
/// deletion. Records of types the bridge does not know are an error (counted by the caller).
pub fn decode_change(zone: &str, change: &proto::RecordChange, ring: &KeyRing) -> Result<RecordChange> {
    match &change.record {
        Some(record) => decode_record(zone, record, ring),
        None => {
            let name = change.identifier.as_ref().and_then(|i| i.record_name()).ok_or(Error::NamelessRecord)?;
            Ok(RecordChange::Deleted { record_name: name.to_string() })
        }
    }
}

/// Decodes one record (see [`decode_change`]).
pub fn decode_record(zone: &str, record: &Record, ring: &KeyRing) -> Result<RecordChange> {
    let record_name = record.record_name().ok_or(Error::NamelessRecord)?;
    let record_type = record.type_name().unwrap_or("");
    if let Some(kid) = &record.pcs_key {
        if ring.get(kid).is_none() {
            return Err(Error::PcsKeyMissing(hex(kid)));
        }
    }
    let r = FieldReader { zone, record, record_name, record_type, ring };
    match record_type {
        MESSAGE_RECORD_TYPE => decode_message(&r).map(RecordChange::Message),
        CHAT_RECORD_TYPE => decode_chat(&r).map(RecordChange::Chat),
        ATTACHMENT_RECORD_TYPE => decode_attachment(&r).map(RecordChange::Attachment),
        other => Err(Error::BadField {
            record_type: other.to_string(),
            record: record_name.to_string(),
            field: "type",
            detail: "unknown record type".into(),
        }),
    }
}

fn decode_message(r: &FieldReader<'_>) -> Result<MessageRecord> {
    let time_ns = r.int("time")?.ok_or_else(|| r.missing("time"))?;
    let flags = r.int("flags")?.unwrap_or(0);
    let body = match r.bytes("msgProto")? {
        Some(gz) if !gz.is_empty() => {
            let raw = gunzip(&gz).map_err(|e| r.bad("msgProto", e))?;
            proto::MessageProto::decode(raw.as_slice()).map_err(|e| r.bad("msgProto", e))?
        }
        _ => proto::MessageProto::default(),
    };
    Ok(MessageRecord {
        record_name: r.record_name.to_string(),
        guid: r.required_string("guid")?,
        chat_id: r.required_string("chatID")?,
        sender: r.string("sender")?.unwrap_or_default(),
        flags: flags as u64,
        ts_ms: apple_ns_to_unix_ms(time_ns),
        text: body.text,
        subject: body.subject,
        associated_type: body.associated_message_type,
        associated_guid: body.associated_message_guid,
        service: r.string("svc")?,
    })
}

fn decode_chat(r: &FieldReader<'_>) -> Result<ChatRecord> {
    let participants = r
        .bytes_list("ptcpts")?
        .iter()
        .map(|p| r.plist::<Participant>("ptcpts", p).map(|p| p.person_id))
        .collect::<Result<Vec<_>>>()?;
    Ok(ChatRecord {
        record_name: r.record_name.to_string(),
        chat_id: r.required_string("cid")?,
        group_id: r.string("gid")?,
        style: r.int("stl")?.unwrap_or(STYLE_DIRECT),
        display_name: r.string("name")?.filter(|n| !n.is_empty()),
        participants,
        service: r.string("svc")?,
        modified_ms: r.modified_ms(),
    })
}

fn decode_attachment(r: &FieldReader<'_>) -> Result<AttachmentRecord> {
    let cm = r.bytes("cm")?.ok_or_else(|| r.missing("cm"))?;
    let raw = gunzip(&cm).map_err(|e| r.bad("cm", e))?;
    let meta: AttachmentMeta = r.plist("cm", &raw)?;
    let asset_size = r.record.field("lqa").and_then(|v| v.asset_value.as_ref()).and_then(|a| a.size);
    Ok(AttachmentRecord {
        record_name: r.record_name.to_string(),
        guid: meta.aguid,
        mime_type: meta.mimet,
        filename: meta.filename,
        total_bytes: meta.tb,
        asset_size,
    })
}

/// Reads a `MessagesSummary` record's count for `record_type`: the first element of the int64
/// list named after the record type, summed over the list if it has several elements.
pub fn summary_count(record: &Record, record_type: &str) -> Option<i64> {
    let v = record.field(record_type)?;
    if v.list_values.is_empty() {
        return v.signed_value;
    }
    Some(v.list_values.iter().filter_map(|x| x.signed_value).sum())
}

/// Builds encrypted records the way a CloudKit client saves them: fields encrypted under the
/// zone's current record key, `pcsKey` set to its id prefix. Nonces are derived from the key and
/// the field context (unique per record and field), so the output is deterministic.
pub struct RecordBuilder<'a> {
    zone: &'a str,
    key: &'a PcsKey,
    record: Record,
}

impl<'a> RecordBuilder<'a> {
    pub fn new(zone: &'a str, owner: &str, record_name: &str, record_type: &str, key: &'a PcsKey) -> Self {
        let record = Record {
            etag: Some("1".into()),
            record_identifier: Some(proto::RecordIdentifier {
                value: Some(proto::Identifier {
                    name: Some(record_name.to_string()),
                    r#type: Some(proto::identifier_type::RECORD),
                }),
                zone_identifier: Some(proto::zone_id(zone, owner)),
            }),
            r#type: Some(proto::RecordType { name: Some(record_type.to_string()) }),
            pcs_key: Some(key.short_id().to_vec()),
            ..Default::default()
        };
        RecordBuilder { zone, key, record }
    }

    fn encrypt(&self, field: &str, plain: &[u8]) -> Vec<u8> {
        let context = format!("{}-{}-{}", self.zone, self.record.record_name().unwrap_or(""), field);
        let digest = Sha256::new().chain_update(self.key.raw()).chain_update(context.as_bytes()).chain_update(plain).finalize();
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&digest[..12]);
        self.key.encrypt(plain, context.as_bytes(), nonce)
    }

    fn push(&mut self, field: &str, value: FieldValue) {
        self.record.record_field.push(proto::RecordField {
            identifier: Some(proto::FieldIdentifier { name: Some(field.to_string()) }),
            value: Some(value),
        });
    }

    fn encrypted_scalar(&mut self, field: &str, ty: i32, ev: proto::EncryptedValue) -> &mut Self {
        let ct = self.encrypt(field, &ev.encode_to_vec());
        self.push(field, FieldValue { r#type: Some(ty), bytes_value: Some(ct), is_encrypted: Some(true), ..Default::default() });
        self
    }

    pub fn string(&mut self, field: &str, value: &str) -> &mut Self {
        let ev = proto::EncryptedValue { string_value: Some(value.to_string()), ..Default::default() };
        self.encrypted_scalar(field, value_type::STRING, ev)
    }

    pub fn int(&mut self, field: &str, value: i64) -> &mut Self {
        let ev = proto::EncryptedValue { signed_value: Some(value), ..Default::default() };
        self.encrypted_scalar(field, value_type::INT64, ev)
    }

    fn encrypted_bytes_value(&self, field: &str, plain: &[u8]) -> FieldValue {
        FieldValue {
            r#type: Some(value_type::ENCRYPTED_BYTES),
            bytes_value: Some(self.encrypt(field, plain)),
            is_encrypted: Some(true),
            ..Default::default()
        }
    }

    pub fn bytes(&mut self, field: &str, plain: &[u8]) -> &mut Self {
        let v = self.encrypted_bytes_value(field, plain);
        self.push(field, v);
        self
    }

    pub fn bytes_list(&mut self, field: &str, items: &[Vec<u8>]) -> &mut Self {
        let list_values = items.iter().map(|p| self.encrypted_bytes_value(field, p)).collect();
        self.push(field, FieldValue { r#type: Some(value_type::ENCRYPTED_BYTES_LIST), list_values, ..Default::default() });
        self
    }

    pub fn modified_ms(&mut self, ms: i64) -> &mut Self {
        let date = proto::Date { time: Some(unix_ms_to_apple_secs(ms)) };
        self.record.time_statistics = Some(proto::DateStatistics { creation: Some(date.clone()), modification: Some(date) });
        self
    }

    pub fn asset(&mut self, field: &str, size: u64) -> &mut Self {
        let asset = proto::Asset { size: Some(size), ..Default::default() };
        self.push(field, FieldValue { r#type: Some(value_type::ASSET), asset_value: Some(asset), ..Default::default() });
        self
    }

    pub fn build(&mut self) -> Record {
        std::mem::take(&mut self.record)
    }
}

/// Encodes a typed message as a `MessageEncryptedV3` record.
pub fn encode_message(owner: &str, key: &PcsKey, m: &MessageRecord) -> Record {
    let body = proto::MessageProto {
        unk1: Some(1),
        subject: m.subject.clone(),
        text: m.text.clone(),
        associated_message_type: m.associated_type,
        associated_message_guid: m.associated_guid.clone(),
    };
    let mut b = RecordBuilder::new(MESSAGE_ZONE, owner, &m.record_name, MESSAGE_RECORD_TYPE, key);
    b.string("chatID", &m.chat_id)
        .string("sender", &m.sender)
        .int("time", unix_ms_to_apple_ns(m.ts_ms))
        .string("guid", &m.guid)
        .int("flags", m.flags as i64)
        .bytes("msgProto", &gzip(&body.encode_to_vec(), flate2::Compression::fast()));
    if let Some(svc) = &m.service {
        b.string("svc", svc);
    }
    b.build()
}

fn to_binary_plist<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain structs of strings and integers into memory cannot fail.
    let _ = plist::to_writer_binary(&mut out, value);
    out
}

/// Encodes a typed chat as a `chatEncryptedv2` record.
pub fn encode_chat(owner: &str, key: &PcsKey, c: &ChatRecord) -> Record {
    let ptcpts: Vec<Vec<u8>> =
        c.participants.iter().map(|p| to_binary_plist(&Participant { person_id: p.clone() })).collect();
    let mut b = RecordBuilder::new(CHAT_ZONE, owner, &c.record_name, CHAT_RECORD_TYPE, key);
    b.int("stl", c.style).string("cid", &c.chat_id).bytes_list("ptcpts", &ptcpts).modified_ms(c.modified_ms);
    if let Some(gid) = &c.group_id {
        b.string("gid", gid);
    }
    if let Some(name) = &c.display_name {
        b.string("name", name);
    }
    if let Some(svc) = &c.service {
        b.string("svc", svc);
    }
    b.build()
}

/// Encodes a typed attachment as an `attachment` record.
pub fn encode_attachment(owner: &str, key: &PcsKey, a: &AttachmentRecord) -> Record {
    let meta = AttachmentMeta { aguid: a.guid.clone(), mimet: a.mime_type.clone(), filename: a.filename.clone(), tb: a.total_bytes };
    let cm = gzip(&to_binary_plist(&meta), flate2::Compression::fast());
    let mut b = RecordBuilder::new(ATTACHMENT_ZONE, owner, &a.record_name, ATTACHMENT_RECORD_TYPE, key);
    b.bytes("cm", &cm);
    if let Some(size) = a.asset_size {
        b.asset("lqa", size);
    }
    b.build()
}

/// Builds the plain `MessagesSummary` record the server answers count queries with.
pub fn summary_record(zone: &str, owner: &str, record_type: &str, count: i64) -> Record {
    let mut record = Record {
        record_identifier: Some(proto::RecordIdentifier {
            value: Some(proto::Identifier { name: Some("MessagesSummary".into()), r#type: Some(proto::identifier_type::RECORD) }),
            zone_identifier: Some(proto::zone_id(zone, owner)),
        }),
        r#type: Some(proto::RecordType { name: Some(SUMMARY_RECORD_TYPE.into()) }),
        ..Default::default()
    };
    record.record_field.push(proto::RecordField {
        identifier: Some(proto::FieldIdentifier { name: Some(record_type.to_string()) }),
        value: Some(FieldValue {
            r#type: Some(value_type::INT64_LIST),
            list_values: vec![FieldValue { r#type: Some(value_type::INT64), signed_value: Some(count), ..Default::default() }],
            ..Default::default()
        }),
    });
    record
}
