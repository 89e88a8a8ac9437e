//! Controller manager benchmark: a Deployment of N replicas against an in-process API server
//! and rkube-controller-manager — the time from creating the Deployment to all N pods existing,
//! and the pod creates/s the ReplicaSet controller sustains — with the client creating the same
//! number of pods itself (C in flight) as the baseline, in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;

use super::report::Report;
use super::server::{Http, create_namespace, each, http, kube_config, request, start_server, stop};

/// Parameters of the controller benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Replicas of the Deployment.
    pub replicas: usize,
    /// Pod creates in flight for the baseline.
    pub concurrency: usize,
}

fn pod_json(name: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "baseline"}},
            "spec": {"containers": [{"name": "web", "image": "busybox:latest"}]}
        })
        .to_string(),
    )
}

/// The client creating `n` pods itself with `concurrency` in flight: pods/s.
async fn baseline(c: &Arc<Http>, base: &str, n: usize, concurrency: usize) -> anyhow::Result<f64> {
    create_namespace(c, base, "baseline").await?;
    let t = Instant::now();
    each(n, concurrency, |i| {
        let c = c.clone();
        let url = format!("{base}/api/v1/namespaces/baseline/pods");
        async move {
            let (code, body) = request(&c, "POST", &url, Some(pod_json(&format!("p-{i}")))).await?;
            if code != 201 {
                bail!("baseline create: {code} {}", String::from_utf8_lossy(&body));
            }
            Ok(())
        }
    })
    .await?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Runs the controller benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report {
        workload: "controllers".into(),
        ..Default::default()
    };
    report
        .parameters
        .insert("replicas".into(), cfg.replicas.into());
    report
        .parameters
        .insert("baseline_concurrency".into(), cfg.concurrency.into());
    let server = start_server(None).await?;
    let c = Arc::new(http());
    let base_rate = baseline(&c, &server.url, cfg.replicas, cfg.concurrency).await?;

    // The admin's client (for the pod watch), and the controller manager as Kubernetes runs
    // it: system:kube-controller-manager, each controller with its ServiceAccount's token.
    let client = rkube_machinery::client::client(kube_config(&server.kubeconfig).await?)?;
    let manager =
        kube_config(&server.kubeconfig_for_user("system:kube-controller-manager", &[])?).await?;
    create_namespace(&c, &server.url, "bench").await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cm = tokio::spawn(rkube_controller_manager::run(
        rkube_controller_manager::Config {
            service_account_credentials: Some(manager.clone()),
            ..Default::default()
        },
        rkube_machinery::client::client(manager)?,
        None,
        async {
            let _ = stop_rx.await;
        },
    ));
    // Count pods as the watch sees them appear.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let wanted = cfg.replicas;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Instant>();
    let counter = tokio::spawn(async move {
        let mut first = Some(first_tx);
        let mut seen = std::collections::HashSet::new();
        let mut stream = watcher(pods, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let objs = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![p],
                Ok(_) => vec![],
                Err(e) => return Err(anyhow::anyhow!("pod watch: {e}")),
            };
            for p in objs {
                if let Some(f) = first.take() {
                    let _ = f.send(Instant::now());
                }
                seen.insert(p.metadata.name.unwrap_or_default());
            }
            if seen.len() >= wanted {
                return Ok(Instant::now());
            }
        }
        bail!("the pod watch ended")
    });
    let body = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": cfg.replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox:latest"}]}
            }
        }
    });
    let t = Instant::now();
    let (code, resp) = request(
        &c,
        "POST",
        &format!("{}/apis/apps/v1/namespaces/bench/deployments", server.url),
        Some(Bytes::from(body.to_string())),
    )
    .await?;
    if code != 201 {
        bail!(
            "creating the Deployment: {code} {}",
            String::from_utf8_lossy(&resp)
        );
    }
    let done = tokio::time::timeout(Duration::from_secs(600), counter)
        .await
        .context("the Deployment's pods did not all appear within 10 minutes")???;
    let first = first_rx.await.context("no pod appeared")?;
    let all_secs = done.duration_since(t).as_secs_f64();
    let first_secs = first.duration_since(t).as_secs_f64();
    let rate = cfg.replicas as f64 / (done.duration_since(first).as_secs_f64().max(1e-9));
    let n = Api::<Pod>::namespaced(client, "bench")
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), cm).await;
    stop(server).await;
    if n != cfg.replicas {
        bail!("{n} pods exist, {} wanted", cfg.replicas);
    }
    report.measure("Deployment created → first pod", first_secs * 1000.0, "ms");
    report.measure(
        "Deployment created → all pods exist",
        all_secs * 1000.0,
        "ms",
    );
    report.measure("ReplicaSet controller pod creates", rate, "pods/s");
    report.measure("client pod creates (baseline)", base_rate, "pods/s");
    report.ratio("controller creates / client creates", rate / base_rate, 0.5);
    Ok(report)
}
