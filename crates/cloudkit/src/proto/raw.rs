//! [`RetrieveChangesResponseRaw`]: a `record/sync` page with its changes left encoded, decoded by
//! hand so that the number of changes is capped while they are read.
//!
//! Why by hand: prost keeps one value per repeated element, and a change can be two bytes on the
//! wire (a tag and a zero length), so a derived decoder turns an inflated reply of N bytes into
//! N/2 `Bytes` handles (16 times the reply in memory) before anyone can count them. A real page
//! holds a few hundred changes; [`MAX_CHANGES_PER_PAGE`] allows a hundred times that.

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

/// The most changes one page may hold (CloudKit pages hold about 200).
pub const MAX_CHANGES_PER_PAGE: usize = 20_000;

/// [`super::RetrieveChangesResponse`] with unparsed changes (see [`super::ResponseOperationRaw`]);
/// the same wire format (fields 1, 2 and 4), other fields skipped.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct RetrieveChangesResponseRaw {
    /// Each an encoded [`super::RecordChange`].
    pub change: Vec<Bytes>,
    pub sync_continuation_token: Option<Vec<u8>>,
    pub status: Option<i32>,
}

impl Message for RetrieveChangesResponseRaw {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for change in &self.change {
            encoding::bytes::encode(1, change, buf);
        }
        if let Some(token) = &self.sync_continuation_token {
            encoding::bytes::encode(2, token, buf);
        }
        if let Some(status) = &self.status {
            encoding::int32::encode(4, status, buf);
        }
    }

    fn merge_field(&mut self, tag: u32, wire_type: WireType, buf: &mut impl Buf, ctx: DecodeContext) -> Result<(), DecodeError> {
        match tag {
            1 => {
                if self.change.len() >= MAX_CHANGES_PER_PAGE {
                    return Err(DecodeError::new("the page holds more changes than a page may"));
                }
                let mut change = Bytes::new();
                encoding::bytes::merge(wire_type, &mut change, buf, ctx)?;
                self.change.push(change);
                Ok(())
            }
            2 => encoding::bytes::merge(wire_type, self.sync_continuation_token.get_or_insert_with(Vec::new), buf, ctx),
            4 => encoding::int32::merge(wire_type, self.status.get_or_insert(0), buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::bytes::encoded_len_repeated(1, &self.change)
            + self.sync_continuation_token.as_ref().map_or(0, |t| encoding::bytes::encoded_len(2, t))
            + self.status.as_ref().map_or(0, |s| encoding::int32::encoded_len(4, s))
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{RecordChange, RetrieveChangesResponse};

    #[test]
    fn reads_what_the_derived_type_writes_and_back() {
        let full = RetrieveChangesResponse {
            change: vec![RecordChange::default(), RecordChange { etag: Some("e".into()), ..Default::default() }],
            sync_continuation_token: Some(b"tok".to_vec()),
            status: Some(3),
        };
        let raw = RetrieveChangesResponseRaw::decode(full.encode_to_vec().as_slice()).unwrap();
        assert_eq!(raw.change.len(), 2);
        assert_eq!(RecordChange::decode(raw.change[1].clone()).unwrap(), full.change[1]);
        assert_eq!((raw.sync_continuation_token.as_deref(), raw.status), (Some(&b"tok"[..]), Some(3)));
        assert_eq!(raw.encode_to_vec(), full.encode_to_vec());
        assert_eq!(raw.encoded_len(), full.encoded_len());
    }

    #[test]
    fn a_page_of_too_many_changes_is_refused_while_reading() {
        let at = [0x0a, 0x00].repeat(MAX_CHANGES_PER_PAGE);
        assert_eq!(RetrieveChangesResponseRaw::decode(at.as_slice()).unwrap().change.len(), MAX_CHANGES_PER_PAGE);
        let over = [0x0a, 0x00].repeat(MAX_CHANGES_PER_PAGE + 1);
        assert!(RetrieveChangesResponseRaw::decode(over.as_slice()).is_err());
    }
}
