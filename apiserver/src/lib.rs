//! rkube-apiserver: the Kubernetes REST API (discovery, CRUD, watch, patch types, tables,
//! subresources) over a pluggable storage layer (embedded on-disk store or etcd).

pub mod admission;
pub mod alloc;
pub mod bootstrap;
pub mod error;
pub mod http;
pub mod kubeconfig;
pub mod registry;
pub mod resources;
pub mod server;
pub mod storage;
