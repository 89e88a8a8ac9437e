//! The whole-cluster scenarios of issue 10, each on a real cluster of its own
//! ([`rkube_e2e::cluster`]: `rkube server` and `rkube agent` machines in network namespaces
//! on a bridge, real containerd, the real kubectl and rkubectl, offline busybox images).
//!
//! | scenario | test |
//! |---|---|
//! | 1 service discovery and load balancing | `service::web_service_reached_by_ip_and_name_on_every_replica` |
//! | 2 rollout and rollback | `rollout::rolling_update_without_failed_requests_and_undo` |
//! | 3 self-healing | `healing::killed_unhealthy_unready_and_deleted_pods_heal` |
//! | 4 node loss | `node_loss::lost_node_pods_recreated_elsewhere_then_node_returns` |
//! | 5 bin-packing | `binpack::requests_fill_one_node_before_the_next` |
//! | 6 configuration and storage | `config::configmap_secret_emptydir_and_hostpath` |
//! | 7 scaling and deletion | `scale::scale_and_delete_with_each_propagation_policy` |
//! | 8 server restart | `restart::server_restart_keeps_state_and_running_pods` |
//! | 9 scenario 1 on etcd | `service::web_service_on_etcd` |
//! | 10 the two-tier and Job examples | `examples::two_tier_app_found_by_dns_and_a_job_run_to_completion` |
//! | in-cluster API access (issue 11) | `in_cluster::pod_lists_pods_with_its_service_account_token` |
//! | exec and port-forward | `streams::exec_and_port_forward_through_the_api_server` |
//!
//! They need root and the packages of `scripts/setup`.

mod binpack;
mod common;
mod config;
mod examples;
mod healing;
mod in_cluster;
mod node_loss;
mod restart;
mod rollout;
mod scale;
mod service;
mod streams;
