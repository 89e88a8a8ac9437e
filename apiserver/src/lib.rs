//! rkube-apiserver: the Kubernetes REST API over a pluggable storage layer.

pub mod storage;
