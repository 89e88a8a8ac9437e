//! API machinery shared by rkube's components — what kube-rs and k8s-openapi do not provide:
//! label and field selectors, name and label syntax checks, resource quantities, the schemas of
//! the built-in kinds (for OpenAPI, strict field validation and patch strategies), and the
//! Kubernetes patch types (JSON, merge, strategic merge), server-side apply, protobuf bodies, and
//! Lease-based leader election, the shutdown signal and error printing every `main` uses, and
//! HTTPS serving with client certificates (the API server's and the kubelet's), and the
//! certificates.k8s.io machinery (certificate requests, signers, a signing CA).

pub mod apply;
pub mod certificates;
pub mod https;
pub mod leader;
pub mod patch;
pub mod process;
pub mod protobuf;
pub mod quantity;
pub mod schema;
pub mod selector;
pub mod validation;
