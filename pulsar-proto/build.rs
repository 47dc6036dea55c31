//! Compiles `proto/PulsarApi.proto` with protox (pure Rust, no `protoc`) and generates the prost
//! types into `OUT_DIR`. Every command field of `BaseCommand` is boxed so the envelope stays small
//! (one pointer per command instead of the largest command inline).

use std::path::PathBuf;

use prost::Message as _;

const PROTO: &str = "proto/PulsarApi.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile([PROTO], ["proto"])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor is kept so tests can check field numbers against it.
    std::fs::write(out_dir.join("pulsar_api.fds"), fds.encode_to_vec())?;

    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    for field in base_command_message_fields(&fds) {
        config.boxed(format!(".pulsar.proto.BaseCommand.{field}"));
    }
    config.compile_fds(fds)?;
    Ok(())
}

/// Names of the message-typed fields of `BaseCommand` (all of them are command bodies).
fn base_command_message_fields(fds: &prost_types::FileDescriptorSet) -> Vec<String> {
    use prost_types::field_descriptor_proto::Type;
    fds.file
        .iter()
        .flat_map(|file| file.message_type.iter())
        .filter(|message| message.name() == "BaseCommand")
        .flat_map(|message| message.field.iter())
        .filter(|field| field.r#type() == Type::Message)
        .map(|field| field.name().to_owned())
        .collect()
}
