//! Unit tests of the EndpointSlice controller: slicing, in-place updates, placeholders and the
//! stale-cache guard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::reconciler::{desired_endpoints, plan};
use super::*;
use crate::endpoints::tests::{pod, port, service};
use crate::fake::{FakeApi, store_of};

fn pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            Arc::new(pod(
                &format!("p{i:03}"),
                Some(&format!("10.1.{}.{}", i / 200, i % 200 + 1)),
                true,
                8080,
            ))
        })
        .collect()
}

/// Applies a plan as the API would, giving created slices names.
fn apply(p: super::reconciler::Plan, existing: Vec<EndpointSlice>) -> Vec<EndpointSlice> {
    let deleted: Vec<_> = p.delete.iter().map(|s| s.metadata.name.clone()).collect();
    let updated: HashMap<_, _> = p
        .update
        .iter()
        .map(|s| (s.metadata.name.clone(), s.clone()))
        .collect();
    let mut out: Vec<EndpointSlice> = existing
        .into_iter()
        .filter(|s| !deleted.contains(&s.metadata.name))
        .map(|s| updated.get(&s.metadata.name).cloned().unwrap_or(s))
        .collect();
    for (i, mut s) in p.create.into_iter().enumerate() {
        s.metadata.name = Some(format!("web-{}{i}", out.len()));
        out.push(s);
    }
    out
}

#[test]
fn at_most_100_endpoints_per_slice_and_updates_stay_in_place() {
    let svc = service(vec![port("web", 80, IntOrString::String("http".into()))]);
    let p = plan(
        &svc,
        desired_endpoints(&svc, &pods(250), &HashMap::new()),
        vec![],
    );
    assert_eq!(
        p.create
            .iter()
            .map(|s| s.endpoints.len())
            .collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    let s = &p.create[0];
    let l = s.metadata.labels.as_ref().unwrap();
    assert_eq!(l[SERVICE_NAME_LABEL], "web");
    assert_eq!(l[MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(s.ports.as_ref().unwrap()[0].port, Some(8080));
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Service", Some(true))
    );
    let slices = apply(p, vec![]);

    // One pod turns unready: exactly one slice is rewritten.
    let mut now = pods(250);
    let mut p7 = (*now[7]).clone();
    p7.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    now[7] = Arc::new(p7);
    let p = plan(
        &svc,
        desired_endpoints(&svc, &now, &HashMap::new()),
        slices.clone(),
    );
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    let e = p.update[0]
        .endpoints
        .iter()
        .find(|e| e.addresses[0] == "10.1.0.8")
        .unwrap();
    let c = e.conditions.as_ref().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(false), Some(false))
    );

    // Unchanged: nothing to write.
    let p = plan(
        &svc,
        desired_endpoints(&svc, &pods(250), &HashMap::new()),
        slices.clone(),
    );
    assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());

    // New pods fill the half-empty slice before a new one is made.
    let p = plan(
        &svc,
        desired_endpoints(&svc, &pods(300), &HashMap::new()),
        slices.clone(),
    );
    assert!(p.create.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].endpoints.len(), 100);
}

#[test]
fn terminating_pods_are_listed_as_terminating() {
    let svc = service(vec![port("web", 80, IntOrString::Int(8080))]);
    let mut p = pod("t", Some("10.0.0.3"), true, 8080);
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ));
    let d = desired_endpoints(&svc, &[Arc::new(p)], &HashMap::new());
    let e = &d.values().next().unwrap().1[0];
    let c = e.conditions.as_ref().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(true), Some(true))
    );
}

#[test]
fn pods_resolving_ports_differently_get_separate_slices_and_empty_services_a_placeholder() {
    let svc = service(vec![port("web", 80, IntOrString::String("http".into()))]);
    let mixed = vec![
        Arc::new(pod("a", Some("10.0.0.1"), true, 8080)),
        Arc::new(pod("b", Some("10.0.0.2"), true, 9090)),
    ];
    let p = plan(
        &svc,
        desired_endpoints(&svc, &mixed, &HashMap::new()),
        vec![],
    );
    let mut ports: Vec<i32> = p
        .create
        .iter()
        .map(|s| s.ports.as_ref().unwrap()[0].port.unwrap())
        .collect();
    ports.sort();
    assert_eq!(ports, vec![8080, 9090]);
    let slices = apply(p, vec![]);
    // All pods gone: one placeholder remains, empty.
    let p = plan(
        &svc,
        desired_endpoints(&svc, &[], &HashMap::new()),
        slices.clone(),
    );
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.delete.len(), 1);
    assert!(p.update[0].endpoints.is_empty());
    let p = plan(&svc, desired_endpoints(&svc, &[], &HashMap::new()), vec![]);
    assert_eq!(p.create.len(), 1);
    assert!(p.create[0].endpoints.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stale_cache_does_not_duplicate_slices() {
    let fake = FakeApi::new();
    let svc = service(vec![port("web", 80, IntOrString::Int(8080))]);
    let (pod_store, _) = store_of(vec![pod("a", Some("10.0.0.1"), true, 8080)]);
    let (slice_store, mut slice_writer) = store_of::<EndpointSlice>(vec![]);
    let (nodes, _) = store_of::<Node>(vec![]);
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        pods: pod_store,
        slices: slice_store,
        nodes,
        tracker: Tracker::default(),
    });
    reconcile(Arc::new(svc.clone()), ctx.clone()).await.unwrap();
    assert_eq!(
        fake.list::<EndpointSlice>("discovery.k8s.io/v1/endpointslices")
            .len(),
        1
    );
    // The cache has not seen the new slice: wait rather than create another.
    let action = reconcile(Arc::new(svc.clone()), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_millis(100)));
    assert_eq!(
        fake.list::<EndpointSlice>("discovery.k8s.io/v1/endpointslices")
            .len(),
        1
    );
    // Once it has, syncs proceed (and find nothing to do).
    for s in fake.list::<EndpointSlice>("discovery.k8s.io/v1/endpointslices") {
        slice_writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(s));
    }
    fake.clear_requests();
    let action = reconcile(Arc::new(svc), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(fake.requests().is_empty());
}
