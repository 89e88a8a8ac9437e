//! rkube's whole-cluster test harness and benchmarks (`rkube-bench`).

pub mod bench;
