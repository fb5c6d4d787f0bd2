//! Compiles the protos with protox (pure Rust), so building needs no `protoc`,
//! and rebuilds when a migration is added.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/customer_context/v1/common.proto",
    "proto/customer_context/v1/ingest.proto",
    "proto/customer_context/v1/suggestions.proto",
    "proto/customer_context/v1/stylist.proto",
    "proto/customer_context/v1/search.proto",
    "proto/customer_context/v1/context.proto",
    "proto/customer_context/v1/privacy.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    // `sqlx::migrate!` embeds `migrations/` at compile time but cannot tell
    // cargo about a file added there: without this, a new migration is left
    // out of the binary until something else changes.
    println!("cargo:rerun-if-changed=migrations");
    let fds = protox::compile(PROTOS, ["proto"])?;

    // The encoded descriptor set feeds server reflection and the client's
    // JSON output, so both always match the compiled contract.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("customer_context_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
