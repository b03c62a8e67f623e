//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates the tonic client and
//! server code, plus the encoded file descriptor set that server reflection serves.
//!
//! Every message also derives `serde::Serialize` (for `fitrank call --json`); an enum-typed field,
//! which prost holds as an `i32`, is written as its value's proto name (`"CATEGORY_SPORTSWEAR"`),
//! as proto3's JSON mapping does, through `crate::proto::json`.

use std::{env, fmt::Write as _, fs, path::PathBuf};

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build 0.14 no longer emits this itself.
    println!("cargo:rerun-if-changed=proto");

    let mut files: Vec<PathBuf> =
        fs::read_dir("proto/fitrank/v1")?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "proto"));
    files.sort();

    let fds = protox::compile(&files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("fitrank_descriptor.bin"), fds.encode_to_vec())?;

    // Our codec answers undecodable messages INVALID_ARGUMENT (src/proto/codec.rs).
    let mut config =
        tonic_prost_build::configure().build_client(true).build_server(true).codec_path("crate::proto::codec::Codec");
    config = config.message_attribute(".fitrank.v1", "#[derive(serde::Serialize)]");
    let mut names = String::new();
    for file in &fds.file {
        for message in &file.message_type {
            for field in &message.field {
                if field.r#type() != Type::Enum {
                    continue;
                }
                let with = if field.label() == Label::Repeated { "names" } else { "name" };
                let rust_type = field.type_name().trim_start_matches(".fitrank.v1.");
                let path = format!(".fitrank.v1.{}.{}", message.name(), field.name());
                let attribute = format!("#[serde(serialize_with = \"crate::proto::json::{with}::<_, {rust_type}>\")]");
                config = config.field_attribute(path, attribute);
            }
        }
        for e in &file.enum_type {
            writeln!(
                names,
                "impl crate::proto::json::EnumName for {0} {{ fn name(value: i32) -> Option<&'static str> {{ {0}::try_from(value).ok().map(|v| v.as_str_name()) }} }}",
                e.name()
            )?;
        }
    }
    fs::write(out.join("fitrank_enum_names.rs"), names)?;
    config.compile_fds(fds)?;
    Ok(())
}
