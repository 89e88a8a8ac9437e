//! Compiles `proto/cri.proto` (CRI runtime.v1) into messages, clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/cri.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/cri.proto"], &["proto"])?;
    Ok(())
}
