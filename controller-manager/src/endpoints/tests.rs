//! Unit tests of the Endpoints controller: subsets from pods, and the reconcile against the
//! fake API.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Endpoints, Pod, PodCondition, PodSpec, PodStatus, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::fake::{FakeApi, store_of};

pub(crate) fn service(ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("svc-uid".into()),
            labels: Some(BTreeMap::from([("team".into(), "a".into())])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".into(), "web".into())])),
            ports: Some(ports),
            cluster_ip: Some("10.96.0.10".into()),
            ..Default::default()
        }),
        status: None,
    }
}

pub(crate) fn port(name: &str, port: i32, target: IntOrString) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(target),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

pub(crate) fn pod(name: &str, ip: Option<&str>, ready: bool, http_port: i32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            containers: vec![Container {
                name: "app".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: http_port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: ip.map(String::from),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn ips(addrs: &Option<Vec<EndpointAddress>>) -> Vec<String> {
    addrs.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[test]
fn ready_and_not_ready_addresses_with_named_ports() {
    let svc = service(vec![port("web", 80, IntOrString::String("http".into()))]);
    let mut terminating = pod("gone", Some("10.0.0.9"), true, 8080);
    terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    let pods: Vec<Arc<Pod>> = vec![
        pod("a", Some("10.0.0.1"), true, 8080),
        pod("b", Some("10.0.0.2"), false, 8080),
        pod("no-ip", None, true, 8080),
        terminating,
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let (subsets, truncated) = desired_subsets(&svc, &pods);
    assert!(!truncated);
    assert_eq!(subsets.len(), 1);
    let s = &subsets[0];
    assert_eq!(ips(&s.addresses), ["10.0.0.1"]);
    assert_eq!(ips(&s.not_ready_addresses), ["10.0.0.2"]);
    let p = &s.ports.as_ref().unwrap()[0];
    assert_eq!((p.name.as_deref(), p.port), (Some("web"), 8080));
    let a = &s.addresses.as_ref().unwrap()[0];
    assert_eq!(a.node_name.as_deref(), Some("node-1"));
    let r = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
        (Some("Pod"), Some("a"), Some("uid-a"))
    );

    // publishNotReadyAddresses lists every pod as ready, terminating ones included.
    let mut svc = svc;
    svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let (subsets, _) = desired_subsets(&svc, &pods);
    assert_eq!(
        ips(&subsets[0].addresses),
        ["10.0.0.1", "10.0.0.2", "10.0.0.9"]
    );
    assert!(subsets[0].not_ready_addresses.is_none());
}

#[test]
fn subsets_are_repacked_by_the_ports_addresses_offer() {
    let svc = service(vec![
        port("web", 80, IntOrString::String("http".into())),
        port("metrics", 9090, IntOrString::Int(9090)),
    ]);
    let pods: Vec<Arc<Pod>> = vec![
        pod("a", Some("10.0.0.1"), true, 8080),
        pod("b", Some("10.0.0.2"), true, 8081),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let (subsets, _) = desired_subsets(&svc, &pods);
    // Each subset as (its ready IPs, its (port name, number)s).
    type Shape = (Vec<String>, Vec<(String, i32)>);
    let mut shapes: Vec<Shape> = subsets
        .iter()
        .map(|s| {
            (
                ips(&s.addresses),
                s.ports
                    .iter()
                    .flatten()
                    .map(|p| (p.name.clone().unwrap(), p.port))
                    .collect(),
            )
        })
        .collect();
    shapes.sort();
    assert_eq!(
        shapes,
        vec![
            (
                vec!["10.0.0.1".to_string()],
                vec![("web".to_string(), 8080)]
            ),
            (
                vec!["10.0.0.1".to_string(), "10.0.0.2".to_string()],
                vec![("metrics".to_string(), 9090)]
            ),
            (
                vec!["10.0.0.2".to_string()],
                vec![("web".to_string(), 8081)]
            ),
        ]
    );
}

#[test]
fn headless_services_without_ports_get_addresses_only() {
    let mut svc = service(vec![]);
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let pods = vec![Arc::new(pod("a", Some("10.0.0.1"), true, 8080))];
    let (subsets, _) = desired_subsets(&svc, &pods);
    assert_eq!(subsets.len(), 1);
    assert!(subsets[0].ports.is_none());
    assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1"]);
    // A non-headless Service without ports has nothing to reach.
    let svc = service(vec![]);
    assert!(desired_subsets(&svc, &pods).0.is_empty());
}

#[test]
fn more_than_a_thousand_addresses_are_truncated() {
    let svc = service(vec![port("web", 80, IntOrString::Int(80))]);
    let pods: Vec<Arc<Pod>> = (0..1005)
        .map(|i| {
            Arc::new(pod(
                &format!("p{i}"),
                Some(&format!("10.1.{}.{}", i / 200, i % 200)),
                true,
                80,
            ))
        })
        .collect();
    let (subsets, truncated) = desired_subsets(&svc, &pods);
    assert!(truncated);
    assert_eq!(
        subsets
            .iter()
            .map(|s| ips(&s.addresses).len())
            .sum::<usize>(),
        MAX_CAPACITY
    );
}

#[tokio::test(start_paused = true)]
async fn reconcile_writes_endpoints_once() {
    let fake = FakeApi::new();
    let svc = service(vec![port("web", 80, IntOrString::Int(8080))]);
    let pods = vec![pod("a", Some("10.0.0.1"), true, 8080)];
    let (pod_store, _) = store_of(pods);
    let (ep_store, mut ep_writer) = store_of::<Endpoints>(vec![]);
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        pods: pod_store,
        endpoints: ep_store,
    });
    reconcile(Arc::new(svc.clone()), ctx.clone()).await.unwrap();
    let ep: Endpoints = fake.get("v1/endpoints", "ns", "web").unwrap();
    let l = ep.metadata.labels.clone().unwrap();
    assert_eq!((l["team"].as_str(), l[SKIP_MIRROR].as_str()), ("a", "true"));
    assert_eq!(
        ips(&ep.subsets.as_ref().unwrap()[0].addresses),
        ["10.0.0.1"]
    );
    // With the cache up to date nothing is written again.
    ep_writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(ep));
    fake.clear_requests();
    reconcile(Arc::new(svc.clone()), ctx.clone()).await.unwrap();
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    // A Service without a selector is left alone.
    let mut manual = svc;
    manual.spec.as_mut().unwrap().selector = None;
    manual.metadata.name = Some("manual".into());
    reconcile(Arc::new(manual), ctx).await.unwrap();
    assert!(
        fake.get::<Endpoints>("v1/endpoints", "ns", "manual")
            .is_none()
    );
}
