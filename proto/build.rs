//! Compiles the v1 contract with protox (no system protoc) and generates the tonic stubs.
//!
//! The descriptor set written for reflection also holds google/rpc/error_details.proto (a copy
//! of the googleapis file, as tonic-types ships it), so
//! that grpcurl can decode the error details the services attach (AIP-193).

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "gongji/binding/v1/registry.proto",
    "gongji/binding/v1/binding.proto",
    "gongji/payment/v1/account.proto",
    "gongji/payment/v1/premium.proto",
    "gongji/payment/v1/medical.proto",
    "gongji/payment/v1/wallet.proto",
    "gongji/payment/v1/settlement.proto",
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=gongji");
    println!("cargo:rerun-if-changed=google");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let full = protox::compile(PROTOS, ["."])?;
    fs::write(out_dir.join("gongji_descriptor.bin"), full.encode_to_vec())?;

    // Generate code for our own packages only: google.protobuf maps to prost-types, and
    // google.rpc is only in the descriptor set for reflection.
    let mut ours = full.clone();
    ours.file.retain(|f| f.package() != "google.rpc");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(ours)?;
    Ok(())
}
