//! Code generated from `proto/` by `build.rs` (prost messages, tonic clients and servers), and the
//! conversions of domain values into its messages ([`convert`]).

pub mod codec;
pub mod convert;
pub mod json;

/// The `fitrank.v1` package.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fitrank.v1");
    include!(concat!(env!("OUT_DIR"), "/fitrank_enum_names.rs"));
}

/// Encoded `FileDescriptorSet` of every fitrank proto, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fitrank_descriptor.bin"));
