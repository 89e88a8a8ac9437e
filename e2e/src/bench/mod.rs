//! Benchmarks: each measures rkube against a baseline in the same run and reports the ratio.

pub mod api;
pub mod report;
pub mod storage;
