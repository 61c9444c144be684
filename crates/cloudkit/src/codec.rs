//! Decoding CloudKit `Record`s into the typed iMessage records of [`crate::records`].
//!
//! This is what the bridge does with every synced record: pick the record keys (the zone's, named
//! by `pcsKey`, or those of the record's own `protectionInfo`), decrypt each field with its
//! `"{zone}-{record}-{field}"` context, unwrap the inner value (`EncryptedValue` for
//! strings/ints, gzip+protobuf for `msgProto`, binary plists for participants and attachment
//! metadata). There is deliberately no encoder here: the simulator has its own, so that the two
//! sides of a test do not share a reading of the format.

use std::io::Cursor;

use prost::Message;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::framing::gunzip_capped;
use crate::limits::Limits;
use crate::pcs::{hex, KeyRing};
use crate::proto::{self, value_type, FieldValue, Record};
use crate::records::*;

const APPLE_EPOCH_SECS_F: f64 = APPLE_EPOCH_UNIX_SECS as f64;

fn apple_secs_to_unix_ms(secs: f64) -> i64 {
    ((secs + APPLE_EPOCH_SECS_F) * 1000.0).round() as i64
}

/// Participant entry of `ptcpts` (binary plist).
#[derive(Debug, Deserialize)]
struct Participant {
    #[serde(rename = "FZPersonID")]
    person_id: String,
}

/// Attachment metadata `cm` (gzipped binary plist), keys as rustpush's `AttachmentMeta` names
/// them. Integers may come as plist integers or reals; booleans as booleans or integers.
#[derive(Debug, Deserialize)]
struct AttachmentMeta {
    aguid: String,
    #[serde(default)]
    mimet: Option<String>,
    #[serde(rename = "fn", default)]
    filename: Option<String>,
    #[serde(default)]
    tb: i64,
    #[serde(default)]
    t: Option<String>,
    #[serde(default)]
    tn: Option<String>,
    #[serde(rename = "is", default)]
    is_sticker: Flag,
    #[serde(default)]
    ha: Flag,
    #[serde(default)]
    ig: Flag,
    #[serde(default)]
    st: i64,
    #[serde(default)]
    vers: i64,
    #[serde(default)]
    cdt: i64,
    #[serde(default)]
    sdt: i64,
}

/// A plist flag written as a boolean or as 0/1.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "FlagRepr")]
struct Flag(bool);

#[derive(Deserialize)]
#[serde(untagged)]
enum FlagRepr {
    Bool(bool),
    Int(i64),
}

impl From<FlagRepr> for Flag {
    fn from(r: FlagRepr) -> Self {
        Flag(match r {
            FlagRepr::Bool(b) => b,
            FlagRepr::Int(n) => n != 0,
        })
    }
}

/// Reads the fields of one record, decrypting with the zone's key ring.
struct FieldReader<'a> {
    zone: &'a str,
    record: &'a Record,
    record_name: &'a str,
    record_type: &'a str,
    ring: &'a KeyRing,
    limits: &'a Limits,
}

impl<'a> FieldReader<'a> {
    fn bad(&self, field: &'static str, detail: impl ToString) -> Error {
        Error::BadField { record_type: self.record_type.to_string(), record: self.record_name.to_string(), field, detail: detail.to_string() }
    }

    fn missing(&self, field: &'static str) -> Error {
        Error::MissingField { record_type: self.record_type.to_string(), record: self.record_name.to_string(), field }
    }

    /// Inflates a gzipped field under [`Limits::max_field_bytes`]: too large is
    /// [`Error::TooLarge`] naming the record and field, anything else a [`Error::BadField`].
    fn gunzip(&self, field: &'static str, gz: &[u8]) -> Result<Vec<u8>> {
        gunzip_capped(gz, self.limits.max_field_bytes).map_err(|e| match e {
            e @ Error::TooLarge { .. } => {
                e.too_large_as(format!("{} record {}: field {field}, inflated,", self.record_type, self.record_name), "max_field_bytes")
            }
            e => self.bad(field, e),
        })
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
            Ok(Some(proto::EncryptedValue { signed_value: v.signed_value, date_value: v.date_value.clone(), string_value: v.string_value.clone() }))
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
/// deletion. A record of a type the bridge does not read is [`Error::UnknownRecordType`]: Apple's
/// zones hold more types than Messages' three, and a client skips them (the caller counts them).
/// Gzipped fields inflate under the default [`Limits`]; see [`decode_change_with`].
pub fn decode_change(zone: &str, change: &proto::RecordChange, ring: &KeyRing) -> Result<RecordChange> {
    decode_change_with(zone, change, ring, &Limits::default())
}

/// [`decode_change`] under the caller's [`Limits`] (a field inflating past
/// [`Limits::max_field_bytes`] is [`Error::TooLarge`]).
pub fn decode_change_with(zone: &str, change: &proto::RecordChange, ring: &KeyRing, limits: &Limits) -> Result<RecordChange> {
    match &change.record {
        Some(record) => decode_record_with(zone, record, ring, limits),
        None => {
            let name = change.identifier.as_ref().and_then(|i| i.record_name()).ok_or(Error::NamelessRecord)?;
            Ok(RecordChange::Deleted { record_name: name.to_string() })
        }
    }
}

/// Decodes one record (see [`decode_change`]).
pub fn decode_record(zone: &str, record: &Record, ring: &KeyRing) -> Result<RecordChange> {
    decode_record_with(zone, record, ring, &Limits::default())
}

/// Decodes one record under the caller's [`Limits`] (see [`decode_change_with`]).
pub fn decode_record_with(zone: &str, record: &Record, ring: &KeyRing, limits: &Limits) -> Result<RecordChange> {
    let record_name = record.record_name().ok_or(Error::NamelessRecord)?;
    let record_type = record.type_name().unwrap_or("");
    let own_ring = record_ring(record, ring)?;
    let r = FieldReader { zone, record, record_name, record_type, ring: own_ring.as_ref().unwrap_or(ring), limits };
    match record_type {
        MESSAGE_RECORD_TYPE => decode_message(&r).map(RecordChange::Message),
        CHAT_RECORD_TYPE => decode_chat(&r).map(RecordChange::Chat),
        ATTACHMENT_RECORD_TYPE => decode_attachment(&r).map(RecordChange::Attachment),
        other => Err(Error::UnknownRecordType { record_type: other.to_string(), record: record_name.to_string() }),
    }
}

/// The keys of a record with its own `protectionInfo` (None: the zone's ring applies, and the
/// key the record names is checked to be in it).
fn record_ring(record: &Record, ring: &KeyRing) -> Result<Option<KeyRing>> {
    match record.protection_info.as_ref().and_then(|p| p.protection_info.as_deref()) {
        Some(protection) => Ok(Some(ring.for_record_protection(protection)?)),
        None => {
            if let Some(kid) = &record.pcs_key {
                if ring.get(kid).is_none() {
                    return Err(Error::PcsKeyMissing(hex(kid)));
                }
            }
            Ok(None)
        }
    }
}

/// What downloading an asset field needs from its record: the asset as the server sent it and
/// its FORD key, which the record key seals under the field name
/// `{field}-{b64 signature}-{b64 referenceSignature}` (rustpush `CloudKitEncryptedValue for
/// Asset`). None when the record has no such asset field.
pub fn asset_keys(zone: &str, record: &Record, field: &'static str, ring: &KeyRing) -> Result<Option<(proto::Asset, Vec<u8>)>> {
    use base64::Engine as _;
    let Some(asset) = record.field(field).and_then(|v| v.asset_value.as_ref()) else { return Ok(None) };
    let record_name = record.record_name().ok_or(Error::NamelessRecord)?;
    let own_ring = record_ring(record, ring)?;
    let ring = own_ring.as_ref().unwrap_or(ring);
    let b64 = |b: &Option<Vec<u8>>| base64::engine::general_purpose::STANDARD.encode(b.as_deref().unwrap_or_default());
    let sealed = asset.protection_info.as_ref().and_then(|p| p.protection_info.as_deref()).ok_or_else(|| Error::MissingField {
        record_type: record.type_name().unwrap_or("").to_string(),
        record: record_name.to_string(),
        field: "lqa.protectionInfo",
    })?;
    let context = format!("{zone}-{record_name}-{field}-{}-{}", b64(&asset.signature), b64(&asset.reference_signature));
    let ford_key = ring.decrypt(sealed, &context)?;
    Ok(Some((asset.clone(), ford_key)))
}

fn decode_message(r: &FieldReader<'_>) -> Result<MessageRecord> {
    let time_ns = r.int("time")?.ok_or_else(|| r.missing("time"))?;
    let flags = r.int("flags")?.unwrap_or(0);
    let body = match r.bytes("msgProto")? {
        Some(gz) if !gz.is_empty() => {
            let raw = r.gunzip("msgProto", &gz)?;
            proto::MessageProto::decode(raw.as_slice()).map_err(|e| r.bad("msgProto", e))?
        }
        _ => proto::MessageProto::default(),
    };
    let mut content = crate::content::message_content(&body);
    if let Some(gz) = r.bytes("msgProto2")?.filter(|b| !b.is_empty()) {
        let raw = r.gunzip("msgProto2", &gz)?;
        let extra = proto::MessageProto2::decode(raw.as_slice()).map_err(|e| r.bad("msgProto2", e))?;
        // A reply to one part names the message it answers.
        content.reply_to = extra.reply.map(|g| match AssociationTarget::parse(&g) {
            AssociationTarget { form: TargetForm::Part, guid, .. } => guid.to_string(),
            _ => g,
        });
    }
    if let Some(gz) = r.bytes("msgProto4")?.filter(|b| !b.is_empty()) {
        let raw = r.gunzip("msgProto4", &gz)?;
        let extra = proto::MessageProto4::decode(raw.as_slice()).map_err(|e| r.bad("msgProto4", e))?;
        content.associated_emoji = extra.associated_message_emoji;
    }
    Ok(MessageRecord {
        record_name: r.record_name.to_string(),
        guid: r.required_string("guid")?,
        chat_id: r.required_string("chatID")?,
        sender: r.string("sender")?.unwrap_or_default(),
        flags: flags as u64,
        ts_ms: apple_ns_to_unix_ms(time_ns),
        content,
        text: body.text,
        subject: body.subject,
        associated_type: body.associated_message_type,
        associated_guid: body.associated_message_guid,
        service: r.string("svc")?,
    })
}

fn decode_chat(r: &FieldReader<'_>) -> Result<ChatRecord> {
    let participants = r.bytes_list("ptcpts")?.iter().map(|p| r.plist::<Participant>("ptcpts", p).map(|p| p.person_id)).collect::<Result<Vec<_>>>()?;
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
    let raw = r.gunzip("cm", &cm)?;
    let meta: AttachmentMeta = r.plist("cm", &raw)?;
    let asset = r.record.field("lqa").and_then(|v| v.asset_value.as_ref());
    Ok(AttachmentRecord {
        record_name: r.record_name.to_string(),
        guid: meta.aguid,
        mime_type: meta.mimet,
        filename: meta.filename,
        total_bytes: meta.tb,
        asset_size: asset.and_then(|a| a.size),
        details: AttachmentDetails {
            uti: meta.t,
            transfer_name: meta.tn,
            is_sticker: meta.is_sticker.0,
            hide_attachment: meta.ha.0,
            is_outgoing: meta.ig.0,
            transfer_state: meta.st,
            version: meta.vers,
            created_date: meta.cdt,
            start_date: meta.sdt,
            asset_signature: asset.and_then(|a| a.signature.as_deref()).map(hex),
            source_path: None,
        },
    })
}

/// Reads a `MessagesSummary` record's list for `record_type`: the int64 list named after the
/// record type, as it is (a plain int64 is a list of one). Only its first element is known to be
/// the zone's count of that type; the rest is kept, not interpreted.
pub fn summary_list(record: &Record, record_type: &str) -> Option<Vec<i64>> {
    let v = record.field(record_type)?;
    if v.list_values.is_empty() {
        return v.signed_value.map(|n| vec![n]);
    }
    Some(v.list_values.iter().filter_map(|x| x.signed_value).collect())
}
