//! The pod lifecycle event generator: relists the runtime every period (one ListPodSandbox and
//! one ListContainers; status calls only for what changed), tells the worker of every pod whose
//! sandboxes or containers changed state what it found (a worker that made that state itself
//! and reported it does not sync again), records its own health for the node's Ready
//! condition, and runs the pod manager's housekeeping with the fresh list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::context::Context;
use crate::runtime::State;

/// Runs until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let mut previous: HashMap<String, Vec<(String, u8)>> = HashMap::new();
    let mut ticker = tokio::time::interval(ctx.config.pleg_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_housekeeping = Instant::now();
    let mut last_error: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let started = Instant::now();
        let pods = match ctx.runtime.all().await {
            Ok(p) => p,
            Err(e) => {
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::warn!(error = %e, "PLEG relist failed");
                    last_error = Some(Instant::now());
                }
                continue;
            }
        };
        if last_error.take().is_some() {
            tracing::info!("PLEG relist works again");
        }
        let mut current = HashMap::with_capacity(pods.len());
        for (uid, p) in &pods {
            let fp = p.fingerprint();
            if previous.get(uid) != Some(&fp) {
                ctx.pods.relisted(uid, fp.clone());
            }
            current.insert(uid.clone(), fp);
        }
        for uid in previous.keys() {
            if !current.contains_key(uid) {
                ctx.pods.wake(uid);
            }
        }
        previous = current;
        let running_pods = pods
            .values()
            .filter(|p| p.sandboxes.iter().any(|s| s.ready))
            .count() as u64;
        let running_containers = pods
            .values()
            .flat_map(|p| p.containers.iter())
            .filter(|c| c.state == State::Running)
            .count() as u64;
        ctx.metrics
            .relisted(started.elapsed(), running_pods, running_containers);
        *ctx.last_relist.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if last_housekeeping.elapsed() >= Duration::from_secs(2) {
            last_housekeeping = Instant::now();
            ctx.pods.housekeeping(&ctx, &pods);
        }
    }
}
