//! Rollout progress (`deployment/progress.go`): the Progressing condition — NewReplicaSetCreated,
//! ReplicaSetUpdated while pods move, NewReplicaSetAvailable when done, ProgressDeadlineExceeded
//! when nothing moved for progressDeadlineSeconds — the ReplicaFailure condition copied from the
//! ReplicaSets, and when to look again at a rollout that might be stuck.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DeploymentCondition, ReplicaSet, ReplicaSetCondition};

use super::Error;
use super::sync::Sync;
use super::util::{self, reason};

fn to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: c.last_transition_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

/// The ReplicaFailure conditions of the new ReplicaSet, else of any ReplicaSet
/// (`getReplicaFailures`).
fn replica_failures(all: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Vec<DeploymentCondition> {
    let failures = |rs: &ReplicaSet| -> Vec<DeploymentCondition> {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ == reason::REPLICA_FAILURE)
            .map(to_deployment_condition)
            .collect()
    };
    if let Some(n) = new_rs {
        let f = failures(n);
        if !f.is_empty() {
            return f;
        }
    }
    all.iter().flat_map(failures).collect()
}

impl Sync<'_> {
    /// Updates the status and the Progressing condition (`syncRolloutStatus`).
    pub async fn sync_rollout_status(
        &mut self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), Error> {
        let mut status = self.calculate_status(all, new_rs);
        let now = self.ctx.clock.now();
        if !util::has_progress_deadline(&self.d) {
            util::remove_condition(&mut status, reason::PROGRESSING);
        }
        let current = self.d.status.clone().unwrap_or_default();
        let current_cond = util::get_condition(&current, reason::PROGRESSING).cloned();
        let complete = status.replicas.unwrap_or(0) == status.updated_replicas.unwrap_or(0)
            && current_cond
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
        let name = self.d.metadata.name.clone().unwrap_or_default();
        let subject = |what: &str| match new_rs {
            Some(rs) => format!(
                "ReplicaSet {:?} {what}",
                rs.metadata.name.clone().unwrap_or_default()
            ),
            None => format!("Deployment {name:?} {what}"),
        };
        if util::has_progress_deadline(&self.d) && !complete {
            if util::deployment_complete(&self.d, &status) {
                let c = util::new_condition(
                    reason::PROGRESSING,
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    subject("has successfully progressed."),
                    now,
                );
                util::set_condition(&mut status, c);
            } else if util::deployment_progressing(&self.d, &status) {
                let mut c = util::new_condition(
                    reason::PROGRESSING,
                    "True",
                    reason::RS_UPDATED,
                    subject("is progressing."),
                    now,
                );
                if let Some(cur) = &current_cond {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    util::remove_condition(&mut status, reason::PROGRESSING);
                }
                util::set_condition(&mut status, c);
            } else if util::deployment_timed_out(&self.d, &status, now) {
                let c = util::new_condition(
                    reason::PROGRESSING,
                    "False",
                    reason::TIMED_OUT,
                    subject("has timed out progressing."),
                    now,
                );
                util::set_condition(&mut status, c);
            }
        }
        match replica_failures(all, new_rs).into_iter().next() {
            Some(c) => util::set_condition(&mut status, c),
            None => util::remove_condition(&mut status, reason::REPLICA_FAILURE),
        }
        if util::status_eq(&current, &status) {
            self.requeue = self.requeue_stuck(&status, now);
            if !self.annotations_dirty() {
                return Ok(());
            }
        }
        self.d.status = Some(status);
        self.update_status().await
    }

    /// When to check a rollout that shows no progress for the deadline
    /// (`requeueStuckDeployment`).
    fn requeue_stuck(
        &self,
        status: &k8s_openapi::api::apps::v1::DeploymentStatus,
        now: jiff::Timestamp,
    ) -> Option<Duration> {
        let current = self.d.status.clone().unwrap_or_default();
        let cond = util::get_condition(&current, reason::PROGRESSING)?;
        if !util::has_progress_deadline(&self.d)
            || util::deployment_complete(&self.d, status)
            || cond.reason.as_deref() == Some(reason::TIMED_OUT)
        {
            return None;
        }
        let deadline = self.d.spec.as_ref()?.progress_deadline_seconds?;
        let at = crate::clock::plus_secs(cond.last_update_time.as_ref()?.0, i64::from(deadline));
        let after = at.duration_since(now);
        let after = Duration::try_from(after).unwrap_or(Duration::ZERO);
        Some(if after < Duration::from_secs(1) {
            Duration::from_secs(1)
        } else {
            after
        })
    }
}
