//! Build script: compiles `proto/grpc/health/v1/health.proto` with a vendored `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = root.join("proto");
    let health = proto_dir.join("grpc/health/v1/health.proto");
    println!("cargo:rerun-if-changed={}", health.display());
    println!("cargo:rerun-if-changed=build.rs");

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_with_config(config, &[health], &[proto_dir])?;
    Ok(())
}
