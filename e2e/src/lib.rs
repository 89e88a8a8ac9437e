//! rkube's whole-cluster test harness ([`cluster`]: real `rkube server` and `rkube agent`
//! machines in network namespaces, used with the real kubectl) and benchmarks (`rkube-bench`).

pub mod bench;
pub mod cluster;
