//! Benchmarks: each measures rkube against a baseline in the same run and reports the ratio.

pub mod api;
mod apimetrics;
pub mod chart;
pub mod churn;
pub mod control_plane;
pub mod controllers;
pub mod dns;
pub mod footprint;
mod hollow_cluster;
pub mod pod_startup;
pub mod progress;
pub mod proxy;
pub mod report;
pub mod scale_limit;
pub mod scheduler;
mod server;
pub mod storage;
