//! A pod on a real containerd: busybox httpd reachable on its pod IP and its hostPort, env from
//! a ConfigMap, a Secret and the downward API, configMap and secret volumes (checked with
//! ExecSync), a ConfigMap update reaching the running pod, readiness toggling the Ready
//! condition, `kubectl logs` and `kubectl logs -f` through the API server (which verifies the
//! kubelet's certificate), the kubelet's `/stats/summary` (through the API server's node
//! proxy), `/metrics` and `/healthz` over HTTPS for authorized users only, plain `/healthz` on
//! the loopback health port, ClusterFirst DNS, hostname, hosts file and QoS
//! cgroup, a hostNetwork pod, and graceful deletion running the preStop hook and delivering
//! SIGTERM before the pod object disappears.

use std::io::BufRead;
use std::net::IpAddr;
use std::process::Stdio;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::harness::*;
use rkube_testkit::apiserver::Identity;

const HOST_PORT: u16 = 30080;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpd_pod_env_volumes_readiness_logs_and_graceful_deletion() {
    let cluster = Cluster::start().await;
    let mut node = TestNode::new(&cluster).await;
    node.start().await;
    let pods = cluster.pods();

    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cfg"}, "data": {"greeting": "hello"}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    let out = node.scratch("out");
    let web = "mkdir -p /www && echo hello-from-httpd > /www/index.html && echo ok > /www/ready \
               && httpd -p 8080 -h /www && echo httpd started \
               && trap 'echo TERM received >> /out/events; exit 0' TERM \
               && while true; do sleep 1; done";
    let ticker =
        "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
    create(
        &pods,
        &pod(
            &node.name,
            "web",
            serde_json::json!({
                "terminationGracePeriodSeconds": 30,
                "containers": [{
                    "name": "web",
                    "image": "busybox:1.35",
                    "command": ["sh", "-c"],
                    "args": [web],
                    "ports": [{"containerPort": 8080, "hostPort": HOST_PORT}],
                    "env": [
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                        {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "PLAIN", "value": "v-$(GREETING)"}
                    ],
                    "volumeMounts": [
                        {"name": "cfg", "mountPath": "/etc/cfg"},
                        {"name": "sec", "mountPath": "/etc/sec"},
                        {"name": "out", "mountPath": "/out"}
                    ],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080},
                                       "periodSeconds": 1, "failureThreshold": 1},
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo preStop ran >> /out/events"]}}}
                }, {
                    "name": "ticker",
                    "image": "busybox:1.35",
                    "command": ["sh", "-c", ticker]
                }],
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "sec", "secret": {"secretName": "sec"}},
                    {"name": "out", "hostPath": {"path": out, "type": "Directory"}}
                ]
            }),
        ),
    )
    .await;
    let p = wait_pod(&pods, "web", "running and Ready", |p| {
        running(p) && condition(p, "Ready")
    })
    .await;
    let status = p.status.clone().unwrap();
    let pod_ip: IpAddr = status.pod_ip.clone().unwrap().parse().unwrap();
    assert!(
        pod_ip.to_string().starts_with("10.251."),
        "pod IP {pod_ip} from the node's pod CIDR {}",
        node.pod_cidr
    );
    assert_eq!(
        status.host_ip.as_deref(),
        Some(node.node_ip.to_string().as_str())
    );
    for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(condition(&p, c), "condition {c}: {:?}", status.conditions);
    }
    let web_status = container_status(&p, "web").unwrap();
    assert_eq!(web_status.restart_count, 0);
    assert!(web_status.ready && web_status.started == Some(true));
    assert!(web_status.image_id.starts_with("sha256:") || web_status.image_id.contains("@sha256:"));

    // httpd answers on the pod IP and on the node's hostPort.
    let via_pod = eventually("httpd on the pod IP", || async {
        http_get(pod_ip, 8080, "/").await.ok()
    })
    .await;
    assert_eq!(via_pod, (200, "hello-from-httpd\n".to_string()));
    let via_host_port = eventually("httpd on the hostPort", || async {
        http_get(IpAddr::V4(node.node_ip), HOST_PORT, "/")
            .await
            .ok()
    })
    .await;
    assert_eq!(via_host_port, (200, "hello-from-httpd\n".to_string()));

    // Env and volumes, seen from inside the container.
    let cri = node.cri();
    let id = container_id(&p, "web");
    let (code, env) = exec(
        &cri,
        &id,
        &["sh", "-c", "echo $GREETING $PASSWORD $MY_POD_IP $PLAIN"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(env.trim(), format!("hello s3cret {pod_ip} v-hello"));
    assert_eq!(
        exec(&cri, &id, &["cat", "/etc/cfg/greeting"]).await.1,
        "hello"
    );
    assert_eq!(
        exec(&cri, &id, &["cat", "/etc/sec/password"]).await.1,
        "s3cret"
    );
    assert_eq!(
        exec(&cri, &id, &["stat", "-L", "-c", "%a", "/etc/sec/password"])
            .await
            .1
            .trim(),
        "644"
    );
    let mounts = exec(&cri, &id, &["cat", "/proc/mounts"]).await.1;
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /etc/sec ") && l.starts_with("tmpfs")),
        "the secret volume is a tmpfs:\n{mounts}"
    );
    let (code, _) = exec(&cri, &id, &["sh", "-c", "echo x > /etc/cfg/new"]).await;
    assert_ne!(code, 0, "configMap volumes are read-only");

    // DNS for ClusterFirst, the hostname, and the cgroup of the pod's QoS class.
    let resolv = exec(&cri, &id, &["cat", "/etc/resolv.conf"]).await.1;
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("ndots:5"), "{resolv}");
    assert_eq!(exec(&cri, &id, &["hostname"]).await.1.trim(), "web");
    let hosts = exec(&cri, &id, &["cat", "/etc/hosts"]).await.1;
    assert!(hosts.contains(&format!("{pod_ip}\tweb")), "{hosts}");
    let cgroup = exec(&cri, &id, &["cat", "/proc/1/cgroup"]).await.1;
    let uid = p.metadata.uid.clone().unwrap();
    assert!(
        cgroup.contains(&format!("{}/besteffort/pod{uid}/", node.cgroup_root)),
        "{cgroup}"
    );

    // An updated ConfigMap reaches the running pod.
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"greeting": "updated"}})),
    )
    .await
    .unwrap();
    eventually("the configMap update inside the pod", || {
        let (cri, id) = (cri.clone(), id.clone());
        async move {
            (exec(&cri, &id, &["cat", "/etc/cfg/greeting"]).await.1 == "updated").then_some(())
        }
    })
    .await;

    // Readiness follows the probe.
    assert_eq!(exec(&cri, &id, &["rm", "/www/ready"]).await.0, 0);
    wait_pod(&pods, "web", "not Ready", |p| {
        running(p) && !condition(p, "Ready") && !condition(p, "ContainersReady")
    })
    .await;
    assert_eq!(exec(&cri, &id, &["touch", "/www/ready"]).await.0, 0);
    wait_pod(&pods, "web", "Ready again", |p| condition(p, "Ready")).await;

    // kubectl logs through the API server's pods/log, proxied to this kubelet.
    let out_logs = cluster.kubectl(&["logs", "web", "-c", "web"]).await;
    assert!(
        out_logs.status.success(),
        "kubectl logs: {}",
        String::from_utf8_lossy(&out_logs.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out_logs.stdout), "httpd started\n");
    let snapshot = cluster.kubectl(&["logs", "web", "-c", "ticker"]).await;
    let seen: Vec<u64> = String::from_utf8_lossy(&snapshot.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(!seen.is_empty(), "the ticker logged");
    let last = *seen.last().unwrap();
    let stamped = cluster
        .kubectl(&["logs", "web", "-c", "web", "--timestamps"])
        .await;
    let stamped = String::from_utf8_lossy(&stamped.stdout).into_owned();
    let (stamp, line) = stamped.trim_end().split_once(' ').unwrap();
    assert!(
        stamp.parse::<jiff::Timestamp>().is_ok() && line == "httpd started",
        "{stamped}"
    );
    let limited = cluster
        .kubectl(&["logs", "web", "-c", "web", "--limit-bytes", "5"])
        .await;
    assert_eq!(String::from_utf8_lossy(&limited.stdout), "httpd");
    let tail = cluster
        .kubectl(&["logs", "web", "-c", "ticker", "--tail", "2"])
        .await;
    assert_eq!(String::from_utf8_lossy(&tail.stdout).lines().count(), 2);
    // -f keeps streaming lines written after it started.
    let mut follow = cluster
        .kubectl_command(&["logs", "-f", "web", "-c", "ticker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let want = last + 10;
    let followed = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + WAIT;
        while let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if line == format!("tick {want}") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(followed, "kubectl logs -f did not stream tick {want}");

    // The kubelet's own endpoints: HTTPS (verified against the cluster CA), for authorized
    // users only; plain /healthz on the loopback health port.
    let kubelet_ip = IpAddr::V4(node.node_ip);
    let admin = Identity::Admin;
    let (code, body) = kubelet_get(&cluster, &admin, kubelet_ip, node.port(), "/healthz")
        .await
        .unwrap();
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (code, _) = kubelet_get(
        &cluster,
        &Identity::Anonymous,
        kubelet_ip,
        node.port(),
        "/healthz",
    )
    .await
    .unwrap();
    assert_eq!(code, 401);
    let healthz = node.kubelet.as_ref().unwrap().healthz_port().unwrap();
    let (code, body) = http_get(IpAddr::from([127, 0, 0, 1]), healthz, "/healthz")
        .await
        .unwrap();
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (code, metrics) = kubelet_get(&cluster, &admin, kubelet_ip, node.port(), "/metrics")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("kubelet_running_pods 1"), "{metrics}");
    // The stats through the API server's node proxy (its kubelet client certificate).
    let proxy = format!("/api/v1/nodes/{}/proxy/stats/summary", node.name);
    let summary = eventually("stats for the pod's containers", || async {
        let (code, _, v) = cluster.api.http("GET", &proxy, &[], vec![]).await;
        let web = v["pods"]
            .as_array()?
            .iter()
            .find(|p| p["podRef"]["name"] == "web")?
            .clone();
        (code == 200 && web["containers"].as_array()?.len() == 2).then_some((v, web))
    })
    .await;
    assert_eq!(summary.0["node"]["nodeName"], node.name.as_str());
    assert!(summary.1["memory"]["workingSetBytes"].as_u64().unwrap() > 0);

    // A hostNetwork pod is on the node's network: its IP is the node's.
    create(
        &pods,
        &pod(
            &node.name,
            "hostnet",
            serde_json::json!({
                "hostNetwork": true,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "web", "image": "busybox:1.35", "command": ["sh", "-c",
                    "mkdir /www && echo on-the-node > /www/index.html && exec httpd -f -p 8081 -h /www"]}]
            }),
        ),
    )
    .await;
    let p = wait_pod(&pods, "hostnet", "running", running).await;
    assert_eq!(
        p.status.as_ref().unwrap().pod_ip.as_deref(),
        Some(node.node_ip.to_string().as_str())
    );
    let answer = eventually("httpd on the node's network", || async {
        http_get(IpAddr::V4(node.node_ip), 8081, "/").await.ok()
    })
    .await;
    assert_eq!(answer, (200, "on-the-node\n".to_string()));
    delete(&pods, "hostnet", 1).await;
    wait_gone(&pods, "hostnet").await;

    // Graceful deletion: the preStop hook, then SIGTERM, then the pod object goes.
    delete(&pods, "web", 30).await;
    wait_gone(&pods, "web").await;
    assert_eq!(
        std::fs::read_to_string(out.join("events")).unwrap_or_default(),
        "preStop ran\nTERM received\n",
        "the preStop hook ran, then the container got SIGTERM"
    );
    // The pod's containers, sandbox and volumes went before its object did.
    let left = cri.list_containers(&[]).await.unwrap().len()
        + cri.list_pod_sandbox(&[]).await.unwrap().len();
    assert_eq!(
        left, 0,
        "nothing of the pod is left once its object is gone"
    );
    let pod_dir = node.data_dir().join("pods").join(&uid);
    assert!(!pod_dir.exists(), "{} removed", pod_dir.display());
    node.shutdown().await;
}
