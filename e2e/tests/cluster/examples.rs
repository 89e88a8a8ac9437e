//! Scenario 10: the README's other examples on the three-node cluster, applied with rkubectl —
//! `manifests/examples/two-tier.yaml` (a front end whose CGI fetches from its back end by the
//! DNS name `backend`) answers through its Service with what the back end served, and
//! `manifests/examples/job.yaml` (three completions, two at a time) reaches Complete, which
//! `kubectl wait --for=condition=complete` sees; deleting it deletes its pods.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use rkube_e2e::cluster::Cluster;

use crate::common::{self, answers, name};

fn example(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/examples")
        .join(file)
        .to_str()
        .expect("a UTF-8 path")
        .to_string()
}

/// Requests to the front end: each answer names the front-end pod and the back-end pod
/// behind it.
const REQUESTS: u32 = 20;

#[test]
fn two_tier_app_found_by_dns_and_a_job_run_to_completion() {
    let c = Cluster::start(common::spec());
    let applied = Instant::now();
    let out = c.rkubectl_ok(&["apply", "-f", &example("two-tier.yaml")]);
    for object in [
        "deployment.apps/backend",
        "service/backend",
        "configmap/frontend-cgi",
        "deployment.apps/frontend",
        "service/frontend",
    ] {
        assert!(out.contains(object), "{object}: {out}");
    }
    let out = c.rkubectl_ok(&["apply", "-f", &example("job.yaml")]);
    assert!(out.contains("job.batch/primes"), "{out}");

    // The two tiers roll out and their Services have them as endpoints.
    let backends: Vec<String> = common::rolled_out(&c, "default", "backend", 2)
        .iter()
        .map(name)
        .collect();
    let frontends: Vec<String> = common::rolled_out(&c, "default", "frontend", 2)
        .iter()
        .map(name)
        .collect();
    common::wait_endpoints(&c, "default", "backend", &backends);
    common::wait_endpoints(&c, "default", "frontend", &frontends);
    eprintln!(
        "TIMING rkubectl apply → both tiers Running and Ready: {:.2?}",
        applied.elapsed()
    );

    // A client reaches the front end by name; every answer carries a back end's page, which
    // the front end fetched from `backend` by DNS.
    let script = format!(
        "n=0; until nslookup frontend.default.svc.cluster.local >/dev/null 2>&1; do \
         n=$((n+1)); [ $n -gt 30 ] && echo NO-DNS && exit 1; sleep 1; done; {}",
        common::requests("got", "frontend", 80, REQUESTS)
    );
    let run = c.run_pod("default", "client", None, &script);
    assert_eq!(run.phase, "Succeeded", "{}", run.log);
    let got = answers(&run.log, "got");
    assert_eq!(
        got.values().sum::<usize>(),
        REQUESTS as usize,
        "{}",
        run.log
    );
    let mut fronts = BTreeSet::new();
    let mut backs = BTreeSet::new();
    for answer in got.keys() {
        // `frontend-… got: backend backend-…`
        let (front, back) = answer.split_once(" got: backend ").unwrap_or_else(|| {
            panic!(
                "not a front end's answer with a back end's page: {answer:?}\n{}",
                run.log
            )
        });
        assert!(frontends.iter().any(|f| f == front), "{answer:?}");
        assert!(backends.iter().any(|b| b == back), "{answer:?}");
        fronts.insert(front.to_string());
        backs.insert(back.to_string());
    }
    eprintln!("front ends answering: {fronts:?}, back ends behind them: {backs:?}");

    // The Job: `kubectl wait` sees Complete, 3 of 3 succeeded, each pod counted the primes.
    let out = c.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/primes",
        "--timeout=150s",
    ]);
    assert!(out.contains("job.batch/primes condition met"), "{out}");
    let job: Job = c.get(&["job", "primes"]).expect("job primes");
    let status = job.status.expect("a status");
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.failed, None);
    assert!(status.completion_time.is_some());
    let table = c.kubectl_ok(&["get", "job", "primes"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["primes", "Complete", "3/3"], "{table}");
    let rk_table = c.rkubectl_ok(&["get", "jobs"]);
    let rk_row: Vec<&str> = rk_table
        .lines()
        .find(|l| l.starts_with("primes "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        rk_table
            .lines()
            .next()
            .map(|h| h.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]),
        "{rk_table}"
    );
    assert_eq!(
        &rk_row[..3],
        &row[..3],
        "rkubectl and kubectl agree: {rk_table}"
    );
    let pods: Vec<Pod> = c.pods("default", "batch.kubernetes.io/job-name=primes");
    assert_eq!(pods.len(), 3, "one pod per completion");
    for p in &pods {
        assert_eq!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded"),
            "{}",
            name(p)
        );
        assert!(
            !p.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == "batch.kubernetes.io/job-tracking"),
            "{} is counted, so its finalizer is gone",
            name(p)
        );
        assert_eq!(
            c.logs("default", &name(p), "primes").trim(),
            "2262 primes below 20000"
        );
    }
    let described = c.rkubectl_ok(&["describe", "job", "primes"]);
    assert!(
        described.contains("0 Active (0 Ready) / 3 Succeeded / 0 Failed"),
        "{described}"
    );

    // Deleting the Job deletes its pods (the garbage collector).
    c.rkubectl_ok(&["delete", "job", "primes"]);
    c.eventually("the Job's pods gone with it", |c| {
        c.pods("default", "batch.kubernetes.io/job-name=primes")
            .is_empty()
            .then_some(())
    });
}
