//! Whatever bytes a client sends, the answer is never `INTERNAL`: random and mutated payloads to
//! every method of every fitrank service (found in the served descriptor set), unary and streaming,
//! are refused as the caller's error (or, when they happen to decode, handled), and the server
//! answers correctly afterwards. Error texts stay bounded whatever the size of a value.

mod common;

use std::marker::PhantomData;

use bytes::{Buf, BufMut};

use common::{TestServer, event, session};
use prost::Message;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status};

use fitrank::proto::v1 as pb;

/// Sends raw bytes as the message and ignores the answer's body: only its status matters.
#[derive(Default)]
struct RawCodec(PhantomData<()>);

struct RawEncoder;
struct IgnoreDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = IgnoreDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> IgnoreDecoder {
        IgnoreDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Decoder for IgnoreDecoder {
    type Item = ();
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        buf.advance(buf.remaining());
        Ok(Some(()))
    }
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Every method of the fitrank services: its path and whether the client streams.
fn methods() -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(fitrank::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                out.push((
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    method.client_streaming(),
                ));
            }
        }
    }
    assert!(out.len() >= 18, "{out:?}");
    out
}

/// Valid messages to mutate, by method name.
fn seeds(method: &str) -> Vec<Vec<u8>> {
    let rank = pb::RankRequest {
        user_id: "u1".into(),
        candidate_session_ids: vec!["s1".into(), "s2".into()],
        limit: 2,
        ..Default::default()
    };
    let events = pb::IngestBatchRequest {
        events: vec![event("e1", pb::EventType::View, "u1", "s1"), event("e2", pb::EventType::Purchase, "u1", "s1")],
    };
    let sessions = pb::UpsertSessionsRequest { sessions: vec![session("s1", None)] };
    let experiment = pb::CreateExperimentRequest {
        experiment: Some(pb::Experiment {
            name: "x".into(),
            layer: "l".into(),
            coverage: 0.5,
            arms: vec![
                pb::ExperimentArm { name: "a".into(), weight: 1.0, ..Default::default() },
                pb::ExperimentArm { name: "b".into(), weight: 1.0, ..Default::default() },
            ],
            ..Default::default()
        }),
    };
    match method {
        "Rank" => vec![rank.encode_to_vec()],
        "IngestBatch" => vec![events.encode_to_vec()],
        "Ingest" => events.events.iter().map(Message::encode_to_vec).collect(),
        "UpsertSessions" => vec![sessions.encode_to_vec()],
        "CreateExperiment" => vec![experiment.encode_to_vec()],
        _ => vec![pb::LoadModelRequest { name: "default".into(), version: "v".into() }.encode_to_vec()],
    }
}

/// A random protobuf-shaped payload: fields of random numbers and wire types, strings that may
/// not be UTF-8, lengths that may lie.
fn random_fields(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(0..8) {
        let field: u64 = rng.gen_range(1..20);
        let wire: u64 = rng.gen_range(0..6);
        push_varint(&mut out, (field << 3) | wire);
        match wire {
            0 => push_varint(&mut out, rng.r#gen()),
            1 => out.extend(rng.r#gen::<[u8; 8]>()),
            2 => {
                let len = rng.gen_range(0..24usize);
                let declared = if rng.gen_bool(0.1) { len + rng.gen_range(1..100) } else { len };
                push_varint(&mut out, declared as u64);
                out.extend((0..len).map(|_| if rng.gen_bool(0.2) { 0xff } else { rng.gen_range(b'a'..=b'z') }));
            }
            5 => out.extend(rng.r#gen::<[u8; 4]>()),
            _ => {}
        }
    }
    out
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A seed with one to four mutations: flipped bits, bytes set to 0xff (not UTF-8), truncation,
/// inserted random bytes.
fn mutate(rng: &mut StdRng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..=4) {
        if bytes.is_empty() {
            bytes.push(rng.r#gen());
            continue;
        }
        let at = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..4) {
            0 => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 => bytes[at] = 0xff,
            2 => bytes.truncate(at),
            _ => {
                let insert: Vec<u8> = (0..rng.gen_range(1..6)).map(|_| rng.r#gen()).collect();
                bytes.splice(at..at, insert);
            }
        }
    }
    bytes
}

fn payload(rng: &mut StdRng, method: &str) -> Vec<u8> {
    match rng.gen_range(0..3) {
        0 => (0..rng.gen_range(0..64)).map(|_| rng.r#gen()).collect(),
        1 => random_fields(rng),
        _ => {
            let seeds = seeds(method);
            let seed = seeds[rng.gen_range(0..seeds.len())].clone();
            mutate(rng, seed)
        }
    }
}

#[tokio::test]
async fn no_payload_gets_internal_and_the_server_keeps_answering() {
    let server = TestServer::start().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    let mut rng = StdRng::seed_from_u64(42);
    let methods = methods();
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for n in 0..6_000 {
        let (path, streaming) = &methods[n % methods.len()];
        let name = path.rsplit('/').next().unwrap();
        grpc.ready().await.unwrap();
        let path = PathAndQuery::try_from(path.as_str()).unwrap();
        let result = if *streaming {
            let messages: Vec<Vec<u8>> = (0..rng.gen_range(1..4)).map(|_| payload(&mut rng, name)).collect();
            let request = tonic::Request::new(tokio_stream::iter(messages));
            grpc.client_streaming(request, path, RawCodec::default()).await.map(drop)
        } else {
            let request = tonic::Request::new(payload(&mut rng, name));
            grpc.unary(request, path, RawCodec::default()).await.map(drop)
        };
        let code = result.err().map_or(Code::Ok, |s| {
            assert!(s.message().len() <= 2_048, "an error text of {} bytes", s.message().len());
            s.code()
        });
        assert!(
            !matches!(code, Code::Internal | Code::Unknown),
            "{name} answered {code:?} to a malformed payload (case {n})"
        );
        *codes.entry(format!("{code:?}")).or_default() += 1;
    }
    assert!(codes.get("InvalidArgument").copied().unwrap_or(0) > 1_000, "{codes:?}");

    // Still serving.
    let mut ranking = pb::ranking_service_client::RankingServiceClient::new(server.channel().await);
    let ok = ranking
        .rank(pb::RankRequest { user_id: "u".into(), candidate_session_ids: vec![], ..Default::default() })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}
