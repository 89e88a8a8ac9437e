//! Hollow kubelets (the in-process fake runtime) against a real API server: several nodes in
//! one process register their Nodes (capacity, addresses, nodeInfo, labels, taints), keep
//! their Leases, run pods (init containers first, pod IPs from the Node's pod CIDR), reject
//! what does not fit (OutOfpods), and delete pods gracefully.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use rkube_kubelet::config::Capacity;
use rkube_kubelet::hollow::FakeConfig;
use rkube_kubelet::{Config, Kubelet, RuntimeMode};

use crate::harness::*;
use rkube_testkit::apiserver::Identity;

/// A hollow kubelet acting as its node (`system:node:<name>`).
async fn hollow_config(cluster: &Cluster, name: &str, dir: &std::path::Path) -> Config {
    let mut cfg = Config::new(name, dir);
    cfg.client = Some(cluster.api.client_as(&Identity::node(name)).await);
    cfg.runtime = RuntimeMode::Fake(FakeConfig::default());
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.node_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Many kubelets in one process: no health port.
    cfg.serving.healthz_port = None;
    cfg.capacity = Some(Capacity {
        cpu_milli: 4000,
        memory: 8 << 30,
        ephemeral_storage: 100 << 30,
    });
    cfg.max_pods = 3;
    cfg.node_status_update_frequency = Duration::from_secs(1);
    cfg.lease_renew_interval = Duration::from_secs(1);
    cfg.register_with_taints =
        rkube_kubelet::config::parse_taints("dedicated=hollow:NoSchedule").unwrap();
    cfg.node_labels = rkube_kubelet::config::parse_labels("rkube.io/hollow=true").unwrap();
    cfg
}

/// Waits for node `name` to register, then gives it `cidr` as its pod CIDR (as the node IPAM
/// controller would).
async fn give_pod_cidr(cluster: &Cluster, name: &str, cidr: &str) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    eventually("the Node registered", || {
        let nodes = nodes.clone();
        async move { nodes.get(name).await.ok() }
    })
    .await;
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"podCIDR": cidr}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_register_run_and_delete_pods() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut kubelets = Vec::new();
    for i in 0..3 {
        let name = format!("hollow-{i}");
        let cfg = hollow_config(&cluster, &name, &dir.path().join(&name)).await;
        kubelets.push(Kubelet::start(cfg).await.expect("hollow kubelet"));
    }
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    for i in 0..3 {
        nodes
            .patch(
                &format!("hollow-{i}"),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"podCIDR": format!("10.244.{i}.0/24")}})),
            )
            .await
            .unwrap();
    }

    // The Node as registered.
    let node = eventually("hollow-1 Ready", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("hollow-1").await.ok()?;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(n)
        }
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "hollow-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert!(labels.contains_key("kubernetes.io/arch"));
    assert_eq!(labels["rkube.io/hollow"], "true");
    let taints = node.spec.as_ref().unwrap().taints.clone().unwrap();
    assert_eq!(
        (
            taints[0].key.as_str(),
            taints[0].value.as_deref(),
            taints[0].effect.as_str()
        ),
        ("dedicated", Some("hollow"), "NoSchedule")
    );
    let status = node.status.clone().unwrap();
    let cap = status.capacity.clone().unwrap();
    assert_eq!(cap["cpu"].0, "4");
    assert_eq!(cap["memory"].0, format!("{}Ki", 8 << 20));
    assert_eq!(cap["pods"].0, "3");
    assert_eq!(status.allocatable.clone().unwrap()["pods"].0, "3");
    let addresses: BTreeMap<String, String> = status
        .addresses
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert_eq!(addresses["InternalIP"], "127.0.0.1");
    assert_eq!(addresses["Hostname"], "hollow-1");
    let info = status.node_info.clone().unwrap();
    assert!(info.container_runtime_version.starts_with("fake://"));
    assert_eq!(info.kubelet_version, rkube_kubelet::node::KUBELET_VERSION);
    let types: Vec<String> = status
        .conditions
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(types.contains(&t.to_string()), "{t} in {types:?}");
    }
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        kubelets[1].port() as i32
    );

    // The Lease is renewed.
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let first = eventually("hollow-1's lease", || {
        let leases = leases.clone();
        async move { leases.get("hollow-1").await.ok()?.spec?.renew_time }
    })
    .await;
    eventually("a lease renewal", || {
        let (leases, first) = (leases.clone(), first.clone());
        async move {
            let renewed = leases.get("hollow-1").await.ok()?.spec?.renew_time?;
            (renewed.0 > first.0).then_some(())
        }
    })
    .await;

    // Pods run on every node; the fourth pod on a node with room for three is rejected.
    let pods = cluster.pods();
    for i in 0..3 {
        for j in 0..3 {
            let spec = serde_json::json!({
                "initContainers": [{"name": "init", "image": "busybox:1.35"}],
                "containers": [{"name": "app", "image": "nginx:1.25"}]
            });
            create(
                &pods,
                &pod(&format!("hollow-{i}"), &format!("p{i}-{j}"), spec),
            )
            .await;
        }
    }
    for i in 0..3 {
        for j in 0..3 {
            let name = format!("p{i}-{j}");
            let p = wait_pod(&pods, &name, "running", running).await;
            let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
            assert!(ip.starts_with(&format!("10.244.{i}.")), "{name}: {ip}");
            let init = &p
                .status
                .as_ref()
                .unwrap()
                .init_container_statuses
                .as_ref()
                .unwrap()[0];
            let t = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
            assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
        }
    }
    create(
        &pods,
        &pod(
            "hollow-0",
            "extra",
            serde_json::json!({"containers": [{"name": "app", "image": "nginx:1.25"}]}),
        ),
    )
    .await;
    let p = wait_pod(&pods, "extra", "rejected", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;
    assert_eq!(
        p.status.as_ref().unwrap().reason.as_deref(),
        Some("OutOfpods")
    );

    // Graceful deletion ends with the pod objects gone.
    for j in 0..3 {
        delete(&pods, &format!("p1-{j}"), 30).await;
    }
    for j in 0..3 {
        wait_gone(&pods, &format!("p1-{j}")).await;
    }
    let cri = kubelets[1].cri();
    let left = cri.list_containers(&[]).await.unwrap().len()
        + cri.list_pod_sandbox(&[]).await.unwrap().len();
    assert_eq!(left, 0, "the runtime holds nothing of the deleted pods");
    for k in kubelets {
        k.stop().await;
    }
}

/// The Services of pods' environments come from a watch, not a list per pod: after its first
/// complete list the cache follows creates and deletes, and answers while the API server is
/// gone (a list would fail). Before the watch runs, Services are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_for_pod_environments_come_from_a_watch() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{DeleteParams, PostParams};
    use rkube_kubelet::env::{ApiObjects, Objects};

    let mut cluster = Cluster::start().await;
    let objects = std::sync::Arc::new(ApiObjects::new(
        cluster.api.client_as(&Identity::node("svc-node")).await,
    ));
    // The API server's own `kubernetes` Service (made in the background) left out.
    let names = |svcs: Vec<Service>| -> Vec<String> {
        let mut n: Vec<String> = svcs
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .filter(|n| n != "kubernetes")
            .collect();
        n.sort();
        n
    };
    let services = |ns: &'static str| {
        let api: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
        api
    };
    let service = |name: &str| -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap()
    };
    services("default")
        .create(&PostParams::default(), &service("before"))
        .await
        .unwrap();
    // Listed (no watch yet).
    assert_eq!(
        names(objects.services("default").await.unwrap()),
        ["before"]
    );

    let cancel = tokio_util::sync::CancellationToken::new();
    let watch = tokio::spawn({
        let (objects, cancel) = (objects.clone(), cancel.clone());
        async move { objects.watch_services(cancel).await }
    });
    let kube_system = services("kube-system");
    kube_system
        .create(&PostParams::default(), &service("after"))
        .await
        .unwrap();
    eventually("the cache with the new Service", || {
        let objects = objects.clone();
        async move {
            (names(objects.services("kube-system").await.ok()?) == ["after"]).then_some(())
        }
    })
    .await;
    services("default")
        .delete("before", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the cache without the deleted Service", || {
        let objects = objects.clone();
        async move {
            names(objects.services("default").await.ok()?)
                .is_empty()
                .then_some(())
        }
    })
    .await;

    // The API server stops: the cache still answers.
    cluster.api.stop().await;
    assert_eq!(
        names(objects.services("kube-system").await.unwrap()),
        ["after"]
    );
    assert!(objects.services("nowhere").await.unwrap().is_empty());
    cancel.cancel();
    watch.await.unwrap();
}

/// A stopping kubelet lets the runtime calls under way finish before it returns (and, with a
/// managed containerd, before it stops containerd): a sandbox being created when the stop
/// comes exists once `stop` is done, rather than being cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_runtime_calls_under_way() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("slow");
    let mut cfg = hollow_config(&cluster, "slow", &node_dir).await;
    let sandbox_delay = Duration::from_secs(4);
    cfg.runtime = RuntimeMode::Fake(FakeConfig {
        sandbox_delay,
        ..FakeConfig::default()
    });
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    let cri = kubelet.cri();
    give_pod_cidr(&cluster, "slow", "10.244.9.0/24").await;
    let spec = serde_json::json!({
        "containers": [{"name": "app", "image": "nginx:1.25"}],
        "volumes": [{"name": "scratch", "emptyDir": {}}]
    });
    let created = create(&cluster.pods(), &pod("slow", "p", spec)).await;
    let uid = created.metadata.uid.unwrap();
    // The pod's volumes are set up just before its sandbox is asked for.
    let pod_dir = node_dir.join("pods").join(&uid);
    eventually("the pod's directory", || {
        let exists = pod_dir.exists();
        async move { exists.then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cri.list_pod_sandbox(&[]).await.unwrap().is_empty());

    let started = std::time::Instant::now();
    kubelet.stop().await;
    assert_eq!(
        cri.list_pod_sandbox(&[]).await.unwrap().len(),
        1,
        "the sandbox call under way finished before stop returned"
    );
    assert!(started.elapsed() < sandbox_delay + Duration::from_secs(5));
}

/// A pod's own status write coming back through the watch does not sync the pod again (as
/// Kubernetes' kubelet only reconciles it), nor does the PLEG finding the containers the
/// worker started itself; a change of its labels does, and so does a status change by another
/// client (a readiness gate's condition), which the kubelet takes into the Ready condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_status_writes_do_not_resync_pods() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = hollow_config(&cluster, "echo", &dir.path().join("echo")).await;
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    let metrics = kubelet.metrics();
    give_pod_cidr(&cluster, "echo", "10.244.7.0/24").await;
    let pods = cluster.pods();
    let spec = serde_json::json!({
        "containers": [{"name": "app", "image": "nginx:1.25"}],
        "readinessGates": [{"conditionType": "example.com/ready"}]
    });
    create(&pods, &pod("echo", "gated", spec)).await;
    let plain = serde_json::json!({"containers": [{"name": "app", "image": "nginx:1.25"}]});
    for name in ["plain-0", "plain-1"] {
        create(&pods, &pod("echo", name, plain.clone())).await;
    }
    let p = wait_pod(&pods, "gated", "running", running).await;
    assert!(!condition(&p, "Ready"), "not Ready before its gate");
    for name in ["plain-0", "plain-1"] {
        wait_pod(&pods, name, "running", running).await;
    }
    // The writes of Running come back to the kubelet, and the PLEG relists (every second),
    // within this time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(metrics.pod_worker_count("create"), 3);
    assert_eq!(
        metrics.pod_worker_count("update"),
        0,
        "the kubelet's own status writes synced pods again"
    );
    // A relist finding the containers a worker started and reported does not sync the pod;
    // one that falls between a pod's sandbox and its container does (it found a state the
    // worker went past), so not every pod can be required to have none.
    let relist_syncs = metrics.pod_worker_count("sync");
    assert!(
        relist_syncs < 3,
        "the PLEG's relists synced {relist_syncs} of 3 pods again"
    );

    pods.patch(
        "gated",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"tier": "web"}}})),
    )
    .await
    .unwrap();
    eventually("a sync for the new label", || async {
        (metrics.pod_worker_count("update") == 1).then_some(())
    })
    .await;

    let gate = serde_json::json!({"status": {"conditions": [
        {"type": "example.com/ready", "status": "True"}
    ]}});
    pods.patch_status("gated", &PatchParams::default(), &Patch::Strategic(gate))
        .await
        .unwrap();
    wait_pod(&pods, "gated", "Ready once its gate is True", |p| {
        condition(p, "Ready")
    })
    .await;
    assert_eq!(metrics.pod_worker_count("update"), 2);
    let rendered = metrics.render("echo");
    assert!(
        rendered.contains("kubelet_pod_worker_duration_seconds_count{operation_type=\"update\"} 2"),
        "{rendered}"
    );
    kubelet.stop().await;
}

/// Containers that change state right after their worker started them — an init container
/// that has already exited when the worker reads the pod back — are still acted on promptly:
/// the relist that finds that state syncs the pod (its app container starts) rather than
/// leaving it to the 30 s sync period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_reached_right_after_a_start_are_acted_on() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = hollow_config(&cluster, "quick", &dir.path().join("quick")).await;
    cfg.runtime = RuntimeMode::Fake(FakeConfig {
        init_run_time: Duration::ZERO,
        ..FakeConfig::default()
    });
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    give_pod_cidr(&cluster, "quick", "10.244.6.0/24").await;
    let pods = cluster.pods();
    let spec = serde_json::json!({
        "initContainers": [{"name": "init", "image": "busybox:1.35"}],
        "containers": [{"name": "app", "image": "nginx:1.25"}]
    });
    create(&pods, &pod("quick", "p", spec)).await;
    wait_pod_for(&pods, "p", "running", Duration::from_secs(10), running).await;
    kubelet.stop().await;
}
