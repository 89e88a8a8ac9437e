//! Test support: the in-process API server of `rkube-testkit` (HTTPS, authentication and RBAC
//! on; the admin kubeconfig and clients for other identities) and the real kubectl run
//! against it.

#![allow(unused_imports)]

pub use rkube_testkit::apiserver::{Backend, Identity, TestServer};
