//! The RollingUpdate strategy (`deployment/rolling.go`): grow the new ReplicaSet as far as
//! maxSurge allows, then shrink old ReplicaSets as far as maxUnavailable allows — unhealthy
//! old replicas first, since removing them costs no availability. The step sizes are pure
//! functions ([`max_scaled_down`], [`cleanup_unhealthy_plan`], [`scale_down_plan`]) tested
//! against Kubernetes' own cases; [`Sync::rollout_rolling`] applies them.

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::Error;
use super::sync::Sync;
use super::util::{self, rs_available, rs_replicas};

/// How many old replicas may be removed now: all pods, minus the minimum that must stay
/// available, minus the new ReplicaSet's pods that are not available yet.
pub fn max_scaled_down(
    d: &k8s_openapi::api::apps::v1::Deployment,
    all: &[ReplicaSet],
    new_rs: &ReplicaSet,
) -> i32 {
    let min_available = util::replicas(d) - util::max_unavailable(d);
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    util::spec_sum(all) - min_available - new_unavailable
}

/// New sizes of `olds` (oldest first) after removing up to `max` unhealthy (not available)
/// replicas (`cleanupUnhealthyReplicas`).
pub fn cleanup_unhealthy_plan(olds: &[ReplicaSet], max: i32) -> (Vec<i32>, i32) {
    let mut total = 0;
    let mut sizes: Vec<i32> = olds.iter().map(rs_replicas).collect();
    for (i, rs) in olds.iter().enumerate() {
        if total >= max {
            break;
        }
        let size = rs_replicas(rs);
        if size == 0 || size == rs_available(rs) {
            continue;
        }
        let down = (max - total).min(size - rs_available(rs));
        sizes[i] = size - down;
        total += down;
    }
    (sizes, total)
}

/// New sizes of `olds` (oldest first) after removing available replicas down to the minimum
/// availability (`scaleDownOldReplicaSetsForRollingUpdate`); `all` includes the new
/// ReplicaSet.
pub fn scale_down_plan(
    d: &k8s_openapi::api::apps::v1::Deployment,
    all: &[ReplicaSet],
    olds: &[ReplicaSet],
) -> (Vec<i32>, i32) {
    let min_available = util::replicas(d) - util::max_unavailable(d);
    let available = util::available_sum(all);
    let mut sizes: Vec<i32> = olds.iter().map(rs_replicas).collect();
    if available <= min_available {
        return (sizes, 0);
    }
    let to_remove = available - min_available;
    let mut total = 0;
    for (i, rs) in olds.iter().enumerate() {
        if total >= to_remove {
            break;
        }
        let size = rs_replicas(rs);
        if size == 0 {
            continue;
        }
        let down = size.min(to_remove - total);
        sizes[i] = size - down;
        total += down;
    }
    (sizes, total)
}

impl Sync<'_> {
    /// One step of a rolling update (`rolloutRolling`).
    pub async fn rollout_rolling(&mut self, rs_list: &[ReplicaSet]) -> Result<(), Error> {
        let (new_rs, olds) = self.all_replicasets(rs_list, true).await?;
        let Some(mut new_rs) = new_rs else {
            return Ok(());
        };
        let all: Vec<ReplicaSet> = olds.iter().cloned().chain([new_rs.clone()]).collect();

        // Scale up, if we can.
        let want = util::replicas(&self.d);
        let scaled_up = if rs_replicas(&new_rs) == want {
            false
        } else if rs_replicas(&new_rs) > want {
            let (scaled, rs) = self.scale_rs(&new_rs, want).await?;
            new_rs = rs;
            scaled
        } else {
            let refs: Vec<&ReplicaSet> = all.iter().collect();
            let size = util::new_rs_new_replicas(&self.d, &refs, &new_rs);
            let (scaled, rs) = self.scale_rs(&new_rs, size).await?;
            new_rs = rs;
            scaled
        };
        let all: Vec<ReplicaSet> = olds.iter().cloned().chain([new_rs.clone()]).collect();
        if scaled_up {
            return self.sync_rollout_status(&all, Some(&new_rs)).await;
        }

        // Scale down, if we can.
        let active_olds: Vec<ReplicaSet> = olds
            .iter()
            .filter(|r| rs_replicas(r) > 0)
            .cloned()
            .collect();
        if self.reconcile_old(&all, active_olds, &new_rs).await? {
            let all: Vec<ReplicaSet> = olds.iter().cloned().chain([new_rs.clone()]).collect();
            return self.sync_rollout_status(&all, Some(&new_rs)).await;
        }
        if util::deployment_complete(
            &self.d,
            self.d.status.as_ref().unwrap_or(&Default::default()),
        ) {
            self.cleanup(&olds).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs)).await
    }

    /// `reconcileOldReplicaSets`: whether anything was scaled down.
    async fn reconcile_old(
        &mut self,
        all: &[ReplicaSet],
        mut olds: Vec<ReplicaSet>,
        new_rs: &ReplicaSet,
    ) -> Result<bool, Error> {
        if util::spec_sum(&olds) == 0 {
            return Ok(false);
        }
        let max = max_scaled_down(&self.d, all, new_rs);
        if max <= 0 {
            return Ok(false);
        }
        olds.sort_by(util::by_creation);
        let (sizes, cleaned) = cleanup_unhealthy_plan(&olds, max);
        for (i, size) in sizes.into_iter().enumerate() {
            if size != rs_replicas(&olds[i]) {
                let (_, updated) = self.scale_rs(&olds[i].clone(), size).await?;
                olds[i] = updated;
            }
        }
        let all: Vec<ReplicaSet> = olds.iter().cloned().chain([new_rs.clone()]).collect();
        let (sizes, scaled) = scale_down_plan(&self.d, &all, &olds);
        for (i, size) in sizes.into_iter().enumerate() {
            if size != rs_replicas(&olds[i]) {
                self.scale_rs(&olds[i].clone(), size).await?;
            }
        }
        Ok(cleaned + scaled > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn deployment(replicas: i32, surge: i32, unavailable: i32) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rs(name: &str, replicas: i32, available: i32, created: i64) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    /// One step of scaling old ReplicaSets down; the rows are Kubernetes'
    /// TestDeploymentController_reconcileOldReplicaSets: (replicas, maxUnavailable, old,
    /// new, old available, new available) → old size after the step.
    #[test]
    fn old_replica_sets_shrink_within_max_unavailable() {
        let cases = [
            (10, 0, 10, 0, 10, 0, 10),
            (10, 2, 10, 0, 10, 0, 8),
            // Unhealthy old replicas are cleaned up first.
            (10, 2, 10, 0, 8, 0, 8),
            // One unhealthy cleaned up, one ready scaled down.
            (10, 2, 10, 0, 9, 0, 8),
            // Unavailable new pods do not allow scaling old ones down further.
            (10, 2, 8, 2, 8, 0, 8),
        ];
        for (replicas, unavailable, old, new, old_avail, new_avail, want) in cases {
            let d = deployment(replicas, 2, unavailable);
            let mut olds = vec![rs("old", old, old_avail, 1)];
            let new_rs = rs("new", new, new_avail, 2);
            let all = vec![olds[0].clone(), new_rs.clone()];
            let max = max_scaled_down(&d, &all, &new_rs);
            let size = if max <= 0 {
                old
            } else {
                let (sizes, _) = cleanup_unhealthy_plan(&olds, max);
                util::set_rs_replicas(&mut olds[0], sizes[0]);
                let all = vec![olds[0].clone(), new_rs.clone()];
                scale_down_plan(&d, &all, &olds).0[0]
            };
            assert_eq!(
                size, want,
                "replicas {replicas} maxUnavailable {unavailable} old {old}/{old_avail} new {new}/{new_avail}"
            );
        }
    }

    /// Cleaning up unhealthy replicas takes the oldest ReplicaSets first and never more than
    /// allowed (TestDeploymentController_cleanupUnhealthyReplicas).
    #[test]
    fn cleanup_of_unhealthy_replicas_is_bounded() {
        // (old size, available, max) → (cleaned, new size)
        for (size, avail, max, cleaned, left) in [
            (10, 8, 2, 2, 8),
            (10, 8, 1, 1, 9),
            (10, 8, 3, 2, 8),
            (10, 8, 0, 0, 10),
            (10, 10, 3, 0, 10),
        ] {
            let (sizes, total) = cleanup_unhealthy_plan(&[rs("a", size, avail, 1)], max);
            assert_eq!(
                (total, sizes[0]),
                (cleaned, left),
                "size {size} available {avail} max {max}"
            );
        }
        let two = [rs("older", 2, 0, 1), rs("newer", 3, 0, 2)];
        assert_eq!(cleanup_unhealthy_plan(&two, 3), (vec![0, 2], 3));
    }

    /// The documented rolling update of 3 replicas with maxSurge 1 / maxUnavailable 0, step by
    /// step, never above 4 pods and never below 3 available.
    #[test]
    fn a_rollout_with_max_surge_1_keeps_three_available() {
        let d = deployment(3, 1, 0);
        let mut old = rs("old", 3, 3, 1);
        let mut new = rs("new", 0, 0, 2);
        for _ in 0..10 {
            // Scale up.
            let refs = [&old, &new];
            let up = util::new_rs_new_replicas(&d, &refs, &new);
            util::set_rs_replicas(&mut new, up);
            assert!(util::spec_sum([&old, &new]) <= 4);
            // The new pods come up.
            new.status.as_mut().unwrap().available_replicas = Some(rs_replicas(&new));
            // Scale down.
            let all = vec![old.clone(), new.clone()];
            if max_scaled_down(&d, &all, &new) > 0 {
                let (sizes, _) = scale_down_plan(&d, &all, std::slice::from_ref(&old));
                util::set_rs_replicas(&mut old, sizes[0]);
                old.status.as_mut().unwrap().available_replicas = Some(sizes[0]);
            }
            assert!(rs_available(&old) + rs_available(&new) >= 3);
            if rs_replicas(&old) == 0 && rs_replicas(&new) == 3 {
                return;
            }
        }
        panic!("rollout did not finish");
    }
}
