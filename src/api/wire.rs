//! fitrank's own decoding of `fitrank.v1.RankRequest`, the hot path's request.
//!
//! The generated `pb::RankRequest` holds its candidate ids as `Vec<String>`: prost allocates,
//! copies and frees one `String` per id, up to 2,000 per request. [`RankRequest`] is the same
//! message on the wire, decoded by hand into an [`IdList`] (all ids in one buffer, plus their end
//! offsets), so the ids of a ranking cost no allocation of their own. The server decodes `Rank` calls with it
//! ([`super::ranking::RankingServer`]); clients keep the generated type, and the two are the same
//! bytes: a property test checks both directions against the generated code.
//!
//! The other fields are decoded by prost's own field functions (`prost::encoding`, which its
//! derived code uses), so their behaviour, errors included, is the generated code's.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::domain::IdList;
use crate::proto::v1 as pb;

/// `fitrank.v1.RankRequest` as the server decodes it (see `proto/fitrank/v1/ranking.proto` for the
/// meaning of each field).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankRequest {
    /// Field 1.
    pub user_id: String,
    /// Field 2.
    pub user: Option<pb::UserAttributes>,
    /// Field 3.
    pub context: Option<pb::RequestContext>,
    /// Field 4 (repeated string).
    pub candidate_session_ids: IdList,
    /// Field 5.
    pub limit: u32,
}

const NAME: &str = "RankRequest";

impl RankRequest {
    /// Appends one candidate id (field 4) read from `buf`.
    ///
    /// Fast path: when the length and the bytes are all in `buf`'s current chunk (always so for
    /// tonic's contiguous decode buffer) and are UTF-8, they are copied straight into the list.
    /// Anything else (an id split across chunks, a truncated message, bytes that are not UTF-8) goes
    /// through prost's own string decoding, which gives the generated code's result and error.
    fn merge_candidate(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if wire_type == WireType::LengthDelimited {
            let chunk = buf.chunk();
            let mut rest = chunk;
            if let Ok(len) = encoding::decode_varint(&mut rest) {
                let header = chunk.len() - rest.len();
                let text = usize::try_from(len).ok().and_then(|len| rest.get(..len)).map(std::str::from_utf8);
                if let Some(Ok(id)) = text {
                    self.candidate_session_ids.push(id);
                    buf.advance(header + id.len());
                    return Ok(());
                }
            }
        }
        let mut id = String::new();
        encoding::string::merge(wire_type, &mut id, buf, ctx)?;
        self.candidate_session_ids.push(&id);
        Ok(())
    }
}

impl Message for RankRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.user_id.is_empty() {
            encoding::string::encode(1, &self.user_id, buf);
        }
        if let Some(user) = &self.user {
            encoding::message::encode(2, user, buf);
        }
        if let Some(context) = &self.context {
            encoding::message::encode(3, context, buf);
        }
        for id in &self.candidate_session_ids {
            encoding::encode_key(4, WireType::LengthDelimited, buf);
            encoding::encode_varint(id.len() as u64, buf);
            buf.put_slice(id.as_bytes());
        }
        if self.limit != 0 {
            encoding::uint32::encode(5, &self.limit, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let (result, field) = match tag {
            1 => (encoding::string::merge(wire_type, &mut self.user_id, buf, ctx), "user_id"),
            2 => {
                (encoding::message::merge(wire_type, self.user.get_or_insert_with(Default::default), buf, ctx), "user")
            }
            3 => (
                encoding::message::merge(wire_type, self.context.get_or_insert_with(Default::default), buf, ctx),
                "context",
            ),
            4 => (self.merge_candidate(wire_type, buf, ctx), "candidate_session_ids"),
            5 => (encoding::uint32::merge(wire_type, &mut self.limit, buf, ctx), "limit"),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        result.map_err(|mut e| {
            e.push(NAME, field);
            e
        })
    }

    fn encoded_len(&self) -> usize {
        let ids: usize = self
            .candidate_session_ids
            .iter()
            .map(|id| encoding::key_len(4) + encoding::encoded_len_varint(id.len() as u64) + id.len())
            .sum();
        (if self.user_id.is_empty() { 0 } else { encoding::string::encoded_len(1, &self.user_id) })
            + self.user.as_ref().map_or(0, |u| encoding::message::encoded_len(2, u))
            + self.context.as_ref().map_or(0, |c| encoding::message::encoded_len(3, c))
            + ids
            + if self.limit == 0 { 0 } else { encoding::uint32::encoded_len(5, &self.limit) }
    }

    fn clear(&mut self) {
        self.user_id.clear();
        self.user = None;
        self.context = None;
        self.candidate_session_ids.clear();
        self.limit = 0;
    }
}

impl From<pb::RankRequest> for RankRequest {
    fn from(r: pb::RankRequest) -> RankRequest {
        RankRequest {
            user_id: r.user_id,
            user: r.user,
            context: r.context,
            candidate_session_ids: r.candidate_session_ids.iter().collect(),
            limit: r.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_request() -> impl Strategy<Value = pb::RankRequest> {
        let user = proptest::option::of((".{0,6}", ".{0,4}", any::<i32>()).prop_map(|(language, region, age)| {
            pb::UserAttributes { language, region, age_band: age % 9, ..Default::default() }
        }));
        let context = proptest::option::of(
            (any::<i64>(), any::<i32>())
                .prop_map(|(time_unix_ms, surface)| pb::RequestContext { time_unix_ms, surface }),
        );
        (".{0,20}", user, context, proptest::collection::vec(".{0,20}", 0..30), any::<u32>()).prop_map(
            |(user_id, user, context, candidate_session_ids, limit)| pb::RankRequest {
                user_id,
                user,
                context,
                candidate_session_ids,
                limit,
            },
        )
    }

    proptest! {
        /// The generated type's bytes decode to the same request, and ours re-encode to the same
        /// bytes, which the generated type decodes to the original.
        #[test]
        fn same_message_as_the_generated_type(req in any_request()) {
            let bytes = req.encode_to_vec();
            let ours = RankRequest::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(&ours, &RankRequest::from(req.clone()));
            prop_assert_eq!(ours.encoded_len(), bytes.len());
            prop_assert_eq!(ours.encode_to_vec(), bytes.clone());
            prop_assert_eq!(pb::RankRequest::decode(ours.encode_to_vec().as_slice()).unwrap(), req);
        }

        /// On any bytes at all, both decoders succeed or fail together, agree on the result, and
        /// give the same error.
        #[test]
        fn same_decoding_of_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            match (pb::RankRequest::decode(bytes.as_slice()), RankRequest::decode(bytes.as_slice())) {
                (Ok(generated), Ok(ours)) => prop_assert_eq!(ours, RankRequest::from(generated)),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "generated {:?}, ours {:?}", a, b),
            }
        }

        /// Bytes arriving in pieces (a `Buf` of several chunks) decode as when contiguous.
        #[test]
        fn chunked_input_decodes_the_same(req in any_request(), cut in any::<prop::sample::Index>()) {
            let bytes = req.encode_to_vec();
            let at = cut.index(bytes.len() + 1);
            let chunked = bytes[..at].chain(&bytes[at..]);
            prop_assert_eq!(RankRequest::decode(chunked).unwrap(), RankRequest::from(req));
        }
    }

    /// Ids that are not UTF-8, unknown fields, a wrong wire type and a truncated id: the same
    /// outcome as the generated code.
    #[test]
    fn edge_cases_match_the_generated_code() {
        let id = |bytes: &[u8]| {
            let mut b = vec![0x22, bytes.len() as u8];
            b.extend_from_slice(bytes);
            b
        };
        let cases: Vec<Vec<u8>> = vec![
            id(b"\xff\xfe"),                                                        // not UTF-8
            id(b"ok"),                                                              // fine
            [id(b"a"), vec![0x48, 0x01], id(b"b")].concat(), // unknown varint field 9 between ids
            vec![0x20, 0x05],                                // field 4 as a varint
            vec![0x22, 0x05, b'a', b'b'],                    // length beyond the end
            vec![0x22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // huge length
            vec![0x22],                                      // no length
        ];
        for bytes in cases {
            let generated = pb::RankRequest::decode(bytes.as_slice()).map(RankRequest::from);
            let ours = RankRequest::decode(bytes.as_slice());
            assert_eq!(ours.as_ref().map_err(ToString::to_string), generated.as_ref().map_err(ToString::to_string));
        }
        let bad = RankRequest::decode(id(b"\xff").as_slice()).unwrap_err().to_string();
        assert!(bad.contains("RankRequest.candidate_session_ids"), "{bad}");
    }
}
