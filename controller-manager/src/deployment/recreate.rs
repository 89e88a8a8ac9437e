//! The Recreate strategy (`deployment/recreate.go`): scale every old ReplicaSet to zero, wait
//! until none of their pods runs any more, and only then create and scale up the new
//! ReplicaSet — old and new pods never run together.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use super::Error;
use super::sync::Sync;
use super::util::{self, rs_replicas};
use crate::podutil::is_terminal;

/// Whether any old pod still runs (`oldPodsRunning`): old ReplicaSets report replicas, or a
/// pod of a ReplicaSet other than the new one is not terminal.
pub fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    olds: &[ReplicaSet],
    pods_by_rs: &HashMap<String, Vec<Arc<Pod>>>,
) -> bool {
    if util::actual_sum(olds) > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|r| r.metadata.uid.as_deref());
    pods_by_rs
        .iter()
        .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
        .any(|(_, pods)| pods.iter().any(|p| !is_terminal(p)))
}

impl Sync<'_> {
    /// One step of a Recreate rollout (`rolloutRecreate`).
    pub async fn rollout_recreate(
        &mut self,
        rs_list: &[ReplicaSet],
        pods_by_rs: &HashMap<String, Vec<Arc<Pod>>>,
    ) -> Result<(), Error> {
        // Do not create the new ReplicaSet before the old ones are down.
        let (new_rs, olds) = self.all_replicasets(rs_list, false).await?;
        let all: Vec<ReplicaSet> = olds.iter().cloned().chain(new_rs.clone()).collect();
        let mut scaled_down = false;
        for old in olds.iter().filter(|r| rs_replicas(r) > 0) {
            let (scaled, _) = self.scale_rs(old, 0).await?;
            scaled_down |= scaled;
        }
        if scaled_down {
            return self.sync_rollout_status(&all, new_rs.as_ref()).await;
        }
        if old_pods_running(new_rs.as_ref(), &olds, pods_by_rs) {
            return self.sync_rollout_status(&all, new_rs.as_ref()).await;
        }
        let (new_rs, olds) = match new_rs {
            Some(n) => (Some(n), olds),
            None => self.all_replicasets(rs_list, true).await?,
        };
        let mut new_rs = new_rs;
        if let Some(n) = new_rs.clone() {
            let want = util::replicas(&self.d);
            let (_, updated) = self.scale_rs(&n, want).await?;
            new_rs = Some(updated);
        }
        if util::deployment_complete(
            &self.d,
            self.d.status.as_ref().unwrap_or(&Default::default()),
        ) {
            self.cleanup(&olds).await?;
        }
        let all: Vec<ReplicaSet> = olds.into_iter().chain(new_rs.clone()).collect();
        self.sync_rollout_status(&all, new_rs.as_ref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::api::core::v1::PodStatus;

    #[test]
    fn old_pods_block_the_new_replica_set_until_they_are_gone() {
        let old = ReplicaSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                uid: Some("old".into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: 0,
                ..Default::default()
            }),
        };
        let pod = |phase: &str| {
            Arc::new(Pod {
                status: Some(PodStatus {
                    phase: Some(phase.into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let mut by_rs = HashMap::new();
        assert!(!old_pods_running(None, std::slice::from_ref(&old), &by_rs));
        by_rs.insert("old".to_string(), vec![pod("Running")]);
        assert!(old_pods_running(None, std::slice::from_ref(&old), &by_rs));
        by_rs.insert("old".to_string(), vec![pod("Succeeded"), pod("Failed")]);
        assert!(
            !old_pods_running(None, std::slice::from_ref(&old), &by_rs),
            "terminal pods do not count"
        );
        let mut reporting = old.clone();
        reporting.status.as_mut().unwrap().replicas = 1;
        assert!(old_pods_running(None, &[reporting], &HashMap::new()));
    }
}
