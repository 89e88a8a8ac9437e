//! The ttl-after-finished controller: deletes a finished Job (Complete or Failed)
//! `spec.ttlSecondsAfterFinished` seconds after it finished, with background propagation so the
//! garbage collector then deletes its pods. Before deleting it re-reads the Job from the API
//! (the TTL or the conditions may have changed) and deletes with that resourceVersion as
//! precondition, as Kubernetes' controller does.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, Client};

use crate::Shared;
use crate::clock::{Clock, plus_secs};
use crate::job::status::{finish_time, is_finished};
use crate::podutil::key;
use crate::runner::{Wiring, is_not_found};

/// The controller's name (`--controllers`, events' source).
pub const NAME: &str = "ttl-after-finished-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "ttl-after-finished-controller";

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The clock.
    pub clock: Clock,
}

/// Why a Job could not be cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or deleting the Job failed.
    #[error("job {key}: {source}")]
    Api {
        /// The Job.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// When the Job expires, if it has a TTL and finished (`getFinishAndExpireTime`).
pub fn expire_at(job: &Job) -> Option<jiff::Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if !is_finished(job) || job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    Some(plus_secs(finish_time(job)?, i64::from(ttl)))
}

/// Deletes the Job once its TTL after finishing has passed; until then waits for it.
pub async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(at) = expire_at(&job) else {
        return Ok(Action::await_change());
    };
    let left = ctx.clock.until(at);
    if !left.is_zero() {
        return Ok(Action::requeue(left.max(Duration::from_millis(1))));
    }
    let job_key = key(&job.metadata);
    let err = |source| Error::Api {
        key: job_key.clone(),
        source,
    };
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    // The cache may be stale: decide on the Job as it is now.
    let fresh = match api.get(&name).await {
        Ok(j) => j,
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(err(e)),
    };
    match expire_at(&fresh) {
        None => return Ok(Action::await_change()),
        Some(at) if !ctx.clock.until(at).is_zero() => {
            return Ok(Action::requeue(ctx.clock.until(at)));
        }
        Some(_) => {}
    }
    tracing::info!(job = %job_key, "cleaning up a finished Job after its TTL");
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            resource_version: fresh.metadata.resource_version.clone(),
            uid: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(e) => Err(err(e)),
    }
}

/// Builds the controller and returns the future that runs it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let jobs = shared.informers.all::<Job>();
    let wiring = Wiring::new(NAME, &shared.metrics, &jobs);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        clock: Clock::new(),
    });
    let controller = wiring.controller(&jobs);
    let concurrency = shared.config.concurrent_ttl_after_finished_syncs;
    Box::pin(wiring.run(controller, concurrency, ctx, reconcile, shared.shutdown()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeApi;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn finished_job(ttl: Option<i32>, finished_at: Option<jiff::Timestamp>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: finished_at.map(|t| {
                    vec![JobCondition {
                        type_: "Complete".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(t)),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_job_is_deleted_in_the_background_after_its_ttl() {
        let fake = FakeApi::new();
        let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let job = finished_job(Some(30), Some(t0));
        fake.insert("batch/v1/jobs", &job);
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            clock: Clock::at(plus_secs(t0, 10)),
        });
        let action = reconcile(Arc::new(job.clone()), ctx.clone()).await.unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(20)));
        assert_eq!(fake.count("DELETE", "/jobs"), 0);

        tokio::time::advance(Duration::from_secs(20)).await;
        reconcile(Arc::new(job), ctx).await.unwrap();
        assert!(fake.list::<Job>("batch/v1/jobs").is_empty());
        let deletes: Vec<_> = fake
            .requests()
            .into_iter()
            .filter(|(m, _)| m == "DELETE")
            .collect();
        assert_eq!(deletes.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_without_ttl_or_not_finished_stay() {
        let fake = FakeApi::new();
        let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            clock: Clock::at(plus_secs(t0, 1000)),
        });
        for job in [finished_job(None, Some(t0)), finished_job(Some(0), None)] {
            fake.insert("batch/v1/jobs", &job);
            let action = reconcile(Arc::new(job), ctx.clone()).await.unwrap();
            assert_eq!(action, Action::await_change());
        }
        assert_eq!(fake.requests().len(), 0, "not even a read");
    }

    #[tokio::test(start_paused = true)]
    async fn the_ttl_is_checked_again_on_the_fresh_job() {
        let fake = FakeApi::new();
        let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        // The cache says 10 s, the API says an hour: not deleted yet.
        fake.insert("batch/v1/jobs", &finished_job(Some(3600), Some(t0)));
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            clock: Clock::at(plus_secs(t0, 60)),
        });
        let action = reconcile(Arc::new(finished_job(Some(10), Some(t0))), ctx)
            .await
            .unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(3540)));
        assert_eq!(fake.list::<Job>("batch/v1/jobs").len(), 1);
    }
}
