//! Endpoints and EndpointSlices against a real API server: they follow pod readiness within a
//! second.

mod common;

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};

const T: Duration = Duration::from_secs(30);
/// How long a readiness change may take to reach the Endpoints on a busy machine.
const EVENT_DRIVEN: Duration = Duration::from_secs(10);

/// (ready IPs, not-ready IPs, ports) of the Endpoints.
async fn endpoints(api: &Api<Endpoints>) -> Option<(Vec<String>, Vec<String>, Vec<i32>)> {
    let ep = api.get_opt("web").await.ok()??;
    let mut ready = vec![];
    let mut not_ready = vec![];
    let mut ports = vec![];
    for s in ep.subsets.unwrap_or_default() {
        ready.extend(s.addresses.unwrap_or_default().into_iter().map(|a| a.ip));
        not_ready.extend(
            s.not_ready_addresses
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.ip),
        );
        ports.extend(s.ports.unwrap_or_default().into_iter().map(|p| p.port));
    }
    ready.sort();
    not_ready.sort();
    Some((ready, not_ready, ports))
}

/// (ready, not ready) endpoint counts of the slices.
async fn slices(api: &Api<EndpointSlice>) -> (usize, usize, usize) {
    let list = api
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items;
    let eps: Vec<_> = list.iter().flat_map(|s| s.endpoints.iter()).collect();
    let ready = eps
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .count();
    (list.len(), ready, eps.len() - ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_and_slices_follow_pod_readiness_within_a_second() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("svc").await;
    let _kubelet = Kubelet::start(c, "svc", Duration::from_millis(20), None);
    Api::<Deployment>::namespaced(c.clone(), "svc")
        .create(&PostParams::default(), &deployment("web", 2, "nginx"))
        .await
        .unwrap();
    let svc = Service {
        metadata: kube::api::ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels(&[("app", "web")])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    Api::<Service>::namespaced(c.clone(), "svc")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let ep_api: Api<Endpoints> = Api::namespaced(c.clone(), "svc");
    let slice_api: Api<EndpointSlice> = Api::namespaced(c.clone(), "svc");
    wait_for("two ready endpoints on the named port", T, || async {
        let (ready, not_ready, ports) = endpoints(&ep_api).await?;
        (ready.len() == 2 && not_ready.is_empty() && ports == [8080]).then_some(())
    })
    .await;
    wait_for("a slice with two ready endpoints", T, || async {
        (slices(&slice_api).await == (1, 2, 0)).then_some(())
    })
    .await;
    let slice = slice_api
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items
        .remove(0);
    let l = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(
        l["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));
    assert!(
        slice.endpoints[0]
            .target_ref
            .as_ref()
            .unwrap()
            .name
            .as_deref()
            .unwrap()
            .starts_with("web-")
    );

    // A pod turns unready, then ready again: both views follow within a second.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "svc");
    let victim = active_pods(c, "svc", "app=web").await.remove(0);
    let name = victim.metadata.name.clone().unwrap();
    let ip = victim.status.as_ref().unwrap().pod_ip.clone().unwrap();
    _kubelet
        .ready
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let ips = AtomicU32::new(200);
    // The changes are pushed by watches, not found by a periodic resync: the waits allow
    // `EVENT_DRIVEN` (a bound for a busy CI machine, far below any resync period); the measured
    // times are printed (well under a second on an idle machine).
    let started = Instant::now();
    set_pod_state(&pods, &name, false, &ips).await.unwrap();
    wait_for("the endpoint to turn not ready", EVENT_DRIVEN, || async {
        let (ready, not_ready, _) = endpoints(&ep_api).await?;
        (ready.len() == 1 && not_ready == [ip.clone()] && slices(&slice_api).await == (1, 1, 1))
            .then_some(())
    })
    .await;
    eprintln!(
        "not-ready propagated to Endpoints and EndpointSlices in {:?}",
        started.elapsed()
    );
    // The stand-in kubelet reports pods ready again (it would otherwise undo the next step).
    _kubelet
        .ready
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    set_pod_state(&pods, &name, true, &ips).await.unwrap();
    wait_for("the endpoint to turn ready", EVENT_DRIVEN, || async {
        let (ready, not_ready, _) = endpoints(&ep_api).await?;
        (ready.len() == 2 && not_ready.is_empty() && slices(&slice_api).await == (1, 2, 0))
            .then_some(())
    })
    .await;
    eprintln!(
        "ready propagated to Endpoints and EndpointSlices in {:?}",
        started.elapsed()
    );

    // Deleting the Service removes its Endpoints and (through the garbage collector) slices.
    Api::<Service>::namespaced(c.clone(), "svc")
        .delete("web", &Default::default())
        .await
        .unwrap();
    wait_for("endpoints and slices gone", T, || async {
        (ep_api.get_opt("web").await.unwrap().is_none() && slices(&slice_api).await.0 == 0)
            .then_some(())
    })
    .await;
}
