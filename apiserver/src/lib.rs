//! rkube-apiserver: the Kubernetes REST API (discovery, CRUD, watch, patch types, tables,
//! subresources) over a pluggable storage layer (embedded on-disk store or etcd), served over
//! TLS with authentication, RBAC, Secrets encrypted at rest and an audit log.

pub mod admission;
pub mod alloc;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod encryption;
pub mod error;
pub mod event_ttl;
pub mod http;
pub mod kubeconfig;
pub mod kubelet;
pub mod master_service;
pub mod pki;
pub mod pod_security;
pub mod registry;
pub mod resources;
pub mod server;
pub mod storage;
