//! Compiles every proto under `proto/` with protox (no system protoc), writes one encoded
//! FileDescriptorSet per package for server reflection, and generates tonic code for the
//! `promo.*` packages. The google.rpc schemas are compiled for reflection only: their Rust
//! types come from tonic-types.

use std::path::{Path, PathBuf};

use prost::Message;

/// `(package, proto files relative to proto/)`; one descriptor set and one module each.
const SERVICE_PACKAGES: &[(&str, &[&str])] = &[
    ("promo.admin.v1", &["promo/admin/v1/workspace.proto"]),
    (
        "promo.growth.v1",
        &[
            "promo/growth/v1/growth.proto",
            "promo/growth/v1/settings.proto",
        ],
    ),
    ("promo.ledger.v1", &["promo/ledger/v1/ledger.proto"]),
    (
        "promo.payouts.v1",
        &[
            "promo/payouts/v1/payouts.proto",
            "promo/payouts/v1/settings.proto",
        ],
    ),
    (
        "promo.marketing.v1",
        &[
            "promo/marketing/v1/marketing.proto",
            "promo/marketing/v1/settings.proto",
        ],
    ),
    (
        "promo.promotion.v1",
        &[
            "promo/promotion/v1/promotion.proto",
            "promo/promotion/v1/settings.proto",
        ],
    ),
];

const ERROR_DETAIL_FILES: &[&str] = &["google/rpc/error_details.proto", "google/rpc/status.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());

    // Packages import each other's messages (a domain's settings message sits in the admin
    // service's Settings), so the code of all of them is generated in one pass.
    let mut all_files = Vec::new();
    for (package, files) in SERVICE_PACKAGES {
        let descriptor_set = compile(&proto_root, files)?;
        let descriptor_path = out_dir.join(format!("{package}.bin"));
        std::fs::write(&descriptor_path, descriptor_set.encode_to_vec())?;
        all_files.extend_from_slice(files);
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Ordered maps encode deterministically, so request fingerprints are stable.
        .btree_map(".")
        // Undecodable requests are the caller's error (INVALID_ARGUMENT), not INTERNAL.
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds(compile(&proto_root, &all_files)?)?;

    let error_details = compile(&proto_root, ERROR_DETAIL_FILES)?;
    std::fs::write(
        out_dir.join("google.rpc.bin"),
        error_details.encode_to_vec(),
    )?;
    Ok(())
}

fn compile(
    proto_root: &Path,
    files: &[&str],
) -> Result<prost_types::FileDescriptorSet, Box<dyn std::error::Error>> {
    let mut compiler = protox::Compiler::new([proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    for file in files {
        compiler.open_file(file)?;
    }
    Ok(compiler.file_descriptor_set())
}
