//! The Kubernetes Container Runtime Interface, `runtime.v1`: the messages of the
//! RuntimeService and ImageService, their gRPC clients (the kubelet's side) and server traits
//! (a runtime's side; rkube's hollow runtime implements them in-process).
//!
//! Generated at build time from `proto/cri.proto`, which carries the upstream field numbers
//! (`k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`), so it talks to containerd, CRI-O and any
//! other CRI runtime.

// The generated code is tonic-prost-build's, not ours to document or lint.
#![allow(missing_docs, clippy::all, rust_2018_idioms)]

/// The `runtime.v1` package.
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

pub use v1::image_service_client::ImageServiceClient;
pub use v1::image_service_server::{ImageService, ImageServiceServer};
pub use v1::runtime_service_client::RuntimeServiceClient;
pub use v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};

/// The CRI API version the kubelet asks for in `Version`.
pub const API_VERSION: &str = "v1";
