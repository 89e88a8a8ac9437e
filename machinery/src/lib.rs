//! API machinery shared by rkube's components — what kube-rs and k8s-openapi do not provide:
//! label and field selectors, boolean query parameters, name and label syntax checks, Go-style durations, trimming cached pods, resource quantities, the schemas of
//! the built-in kinds (for OpenAPI, strict field validation and patch strategies), and the
//! Kubernetes patch types (JSON, merge, strategic merge), server-side apply, request bodies (JSON,
//! YAML and protobuf), and Lease-based leader election, the shutdown signal and error printing
//! every `main` uses, HTTPS serving with client certificates (the API server's and the
//! kubelet's), API clients over HTTP/2, and the certificates.k8s.io machinery (certificate
//! requests, signers, a signing CA). These last five (`leader`, `process`, `https`, `client`,
//! `certificates`) and the async stack they
//! need come with the default feature `runtime`.

pub mod apply;
pub mod body;
#[cfg(feature = "runtime")]
pub mod certificates;
#[cfg(feature = "runtime")]
pub mod client;
pub mod condition;
pub mod cron;
pub mod duration;
#[cfg(feature = "runtime")]
pub mod https;
#[cfg(feature = "runtime")]
pub mod leader;
pub mod patch;
#[cfg(feature = "runtime")]
pub mod process;
pub mod protobuf;
pub mod quantity;
pub mod query;
pub mod quota;
pub mod schema;
pub mod selector;
pub mod slim;
pub mod validation;
