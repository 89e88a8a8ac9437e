//! Pure pieces of a Job's status (Kubernetes' job controller helpers): its conditions
//! (`Complete`, `Failed`, the interim `SuccessCriteriaMet` and `FailureTarget`, `Suspended`),
//! which pods count as failed, the tracking finalizer, the pod-failure back-off and the
//! `uncountedTerminatedPods` bookkeeping that keeps every finished pod counted exactly once.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::podutil::phase;

/// The finalizer on every pod of a Job until the pod is counted in the Job's status.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// Condition types.
pub const COMPLETE: &str = "Complete";
/// The Job failed.
pub const FAILED: &str = "Failed";
/// The Job will fail once its pods are gone.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// The Job will complete once its pods are gone.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// The Job is (or was) suspended.
pub const SUSPENDED: &str = "Suspended";

/// Failure because more pods failed than `spec.backoffLimit`.
pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
/// Failure because the Job ran longer than `spec.activeDeadlineSeconds`.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// Success because `spec.completions` pods succeeded.
pub const COMPLETIONS_REACHED: &str = "CompletionsReached";

/// The first delay before a failed pod is replaced (`DefaultJobPodFailureBackOff`).
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay (`MaxJobPodFailureBackOff`).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(600);

/// The condition of a type.
pub fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether a condition of this type is True.
pub fn has_true(job: &Job, type_: &str) -> bool {
    condition(job, type_).is_some_and(|c| c.status == "True")
}

/// Complete or Failed (`IsJobFinished`).
pub fn is_finished(job: &Job) -> bool {
    has_true(job, COMPLETE) || has_true(job, FAILED)
}

/// When the Job finished: the transition time of its Complete or Failed condition.
pub fn finish_time(job: &Job) -> Option<jiff::Timestamp> {
    [COMPLETE, FAILED]
        .iter()
        .filter_map(|t| condition(job, t))
        .find(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// `spec.suspend`.
pub fn is_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

/// A True condition (`newCondition`).
pub fn new_condition(
    type_: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()).filter(|r: &String| !r.is_empty()),
        message: Some(message.into()).filter(|m: &String| !m.is_empty()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition (`ensureJobConditionStatus`): replaces one of the same type whose status,
/// reason or message differ, adds it when missing unless its status is False. Returns whether
/// anything changed.
pub fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> bool {
    let mut wanted = new_condition(type_, reason, message, now);
    wanted.status = status.into();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != wanted.status || c.reason != wanted.reason || c.message != wanted.message {
            *c = wanted;
            return true;
        }
        return false;
    }
    if status != "False" {
        conditions.push(wanted);
        return true;
    }
    false
}

/// Whether the pod carries the tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

/// Whether the Job replaces only pods that reached the Failed phase (`podReplacementPolicy:
/// Failed`), not those still terminating.
pub fn only_replace_failed(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.pod_replacement_policy.as_deref())
        == Some("Failed")
}

/// Whether a pod counts as failed (`isPodFailed`): the Failed phase, or — unless only Failed
/// pods are replaced — deleted before it succeeded.
pub fn is_pod_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// Being deleted but not yet finished (`CountTerminatingPods`).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// The container restarts of running or pending pods exceed the back-off limit
/// (`pastBackoffLimitOnFailure`, restartPolicy OnFailure only).
pub fn past_backoff_limit_on_failure(job: &Job, pods: &[std::sync::Arc<Pod>]) -> bool {
    let spec = job.spec.as_ref();
    let on_failure = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    if !on_failure {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// The UIDs of `status.uncountedTerminatedPods`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uncounted {
    /// Succeeded pods not yet in `status.succeeded`.
    pub succeeded: Vec<String>,
    /// Failed pods not yet in `status.failed`.
    pub failed: Vec<String>,
}

impl Uncounted {
    /// Those of a status.
    pub fn of(status: &JobStatus) -> Self {
        let u = status.uncounted_terminated_pods.clone().unwrap_or_default();
        Self {
            succeeded: u.succeeded.unwrap_or_default(),
            failed: u.failed.unwrap_or_default(),
        }
    }

    /// Nothing uncounted.
    pub fn is_empty(&self) -> bool {
        self.succeeded.is_empty() && self.failed.is_empty()
    }

    /// Whether the UID is among them.
    pub fn has(&self, uid: &str) -> bool {
        self.succeeded.iter().chain(&self.failed).any(|u| u == uid)
    }

    /// Writes them into a status (an empty object when there are none, as Kubernetes does).
    pub fn store(&self, status: &mut JobStatus) {
        let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: some(&self.succeeded),
            failed: some(&self.failed),
        });
    }
}

/// Moves the uncounted pods that no longer carry the finalizer (or are gone) into the
/// counters (`cleanUncountedPodsWithoutFinalizers`). Returns whether the status changed.
pub fn count_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let mut u = Uncounted::of(status);
    let (s0, f0) = (u.succeeded.len(), u.failed.len());
    u.succeeded.retain(|uid| with_finalizer.contains(uid));
    u.failed.retain(|uid| with_finalizer.contains(uid));
    let counted_s = (s0 - u.succeeded.len()) as i32;
    let counted_f = (f0 - u.failed.len()) as i32;
    if counted_s == 0 && counted_f == 0 {
        return false;
    }
    status.succeeded = nonzero(status.succeeded.unwrap_or(0) + counted_s);
    status.failed = nonzero(status.failed.unwrap_or(0) + counted_f);
    u.store(status);
    true
}

/// `Some(n)` unless 0 (the counters are `omitempty` in Kubernetes).
pub fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// How long a Job waits before replacing failed pods: 10 s doubled for each failure since the
/// last success, at most 10 minutes, counted from the last failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Failures since the last success.
    pub failures: u32,
    /// When the last failure was seen.
    pub last_failure: Option<tokio::time::Instant>,
}

impl Backoff {
    /// The record after this sync's newly finished pods (`newBackoffRecord`): successes reset
    /// it when no pod failed.
    pub fn next(self, new_succeeded: usize, new_failed: usize, now: tokio::time::Instant) -> Self {
        if new_failed > 0 {
            Self {
                failures: self.failures + new_failed as u32,
                last_failure: Some(now),
            }
        } else if new_succeeded > 0 {
            Self::default()
        } else {
            self
        }
    }

    /// Time left before new pods may be created.
    pub fn remaining(&self, now: tokio::time::Instant) -> Duration {
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let delay = POD_FAILURE_BACKOFF
            .saturating_mul(1u32 << (self.failures - 1).min(20))
            .min(MAX_POD_FAILURE_BACKOFF);
        delay.saturating_sub(now.saturating_duration_since(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::PodStatus;

    fn pod(phase: &str, deleting: bool) -> Pod {
        let mut p = Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        if deleting {
            p.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        }
        p
    }

    #[test]
    fn deleted_unfinished_pods_count_as_failed_unless_only_failed_pods_are_replaced() {
        let mut job = Job::default();
        assert!(is_pod_failed(&pod("Failed", false), &job));
        assert!(is_pod_failed(&pod("Running", true), &job));
        assert!(!is_pod_failed(&pod("Succeeded", true), &job));
        assert!(!is_pod_failed(&pod("Running", false), &job));
        job.spec = Some(JobSpec {
            pod_replacement_policy: Some("Failed".into()),
            ..Default::default()
        });
        assert!(!is_pod_failed(&pod("Running", true), &job));
        assert!(is_terminating(&pod("Running", true)));
        assert!(!is_terminating(&pod("Failed", true)));
    }

    #[test]
    fn conditions_are_replaced_only_when_they_change() {
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap();
        let mut c = Vec::new();
        assert!(
            !ensure_condition(&mut c, SUSPENDED, "False", "JobResumed", "Job resumed", t0),
            "a False condition is not added"
        );
        assert!(ensure_condition(
            &mut c,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            t0
        ));
        assert!(!ensure_condition(
            &mut c,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            t1
        ));
        assert_eq!(c[0].last_transition_time, Some(Time(t0)));
        assert!(ensure_condition(
            &mut c,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            t1
        ));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, "False");
        assert_eq!(c[0].last_transition_time, Some(Time(t1)));
    }

    #[test]
    fn uncounted_pods_move_to_the_counters_once_their_finalizer_is_gone() {
        let mut st = JobStatus {
            succeeded: Some(1),
            ..Default::default()
        };
        Uncounted {
            succeeded: vec!["a".into(), "b".into()],
            failed: vec!["c".into()],
        }
        .store(&mut st);
        let held: HashSet<String> = ["b".to_string()].into();
        assert!(count_uncounted(&mut st, &held));
        assert_eq!((st.succeeded, st.failed), (Some(2), Some(1)));
        assert_eq!(
            Uncounted::of(&st),
            Uncounted {
                succeeded: vec!["b".into()],
                failed: vec![]
            }
        );
        assert!(!count_uncounted(&mut st, &held), "nothing more to count");
        assert!(count_uncounted(&mut st, &HashSet::new()));
        assert_eq!(st.succeeded, Some(3));
        assert!(Uncounted::of(&st).is_empty());
        assert_eq!(
            st.uncounted_terminated_pods,
            Some(UncountedTerminatedPods::default())
        );
    }

    #[test]
    fn container_restarts_count_against_the_backoff_limit_with_on_failure() {
        use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodTemplateSpec};
        let job = |policy: &str, limit: i32| Job {
            spec: Some(JobSpec {
                backoff_limit: Some(limit),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        restart_policy: Some(policy.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let restarted = |phase: &str, n: i32| {
            let mut p = pod(phase, false);
            p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
                restart_count: n,
                ..Default::default()
            }]);
            std::sync::Arc::new(p)
        };
        let pods = [restarted("Running", 2), restarted("Pending", 1)];
        assert!(past_backoff_limit_on_failure(&job("OnFailure", 3), &pods));
        assert!(!past_backoff_limit_on_failure(&job("OnFailure", 4), &pods));
        assert!(!past_backoff_limit_on_failure(&job("Never", 1), &pods));
        let finished = [restarted("Failed", 9)];
        assert!(
            !past_backoff_limit_on_failure(&job("OnFailure", 1), &finished),
            "only running or pending pods"
        );
        let once = [restarted("Running", 1)];
        assert!(past_backoff_limit_on_failure(&job("OnFailure", 0), &once));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pods_are_replaced_after_an_exponential_backoff() {
        let now = tokio::time::Instant::now();
        let b = Backoff::default().next(0, 1, now);
        assert_eq!(b.remaining(now), Duration::from_secs(10));
        let b = b.next(0, 2, now);
        assert_eq!(b.remaining(now), Duration::from_secs(40));
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(
            b.remaining(tokio::time::Instant::now()),
            Duration::from_secs(25)
        );
        let b = b.next(1, 0, now);
        assert_eq!(b.remaining(now), Duration::ZERO, "a success resets it");
        let many = Backoff {
            failures: 30,
            last_failure: Some(now),
        };
        assert_eq!(many.remaining(now), MAX_POD_FAILURE_BACKOFF);
    }
}
