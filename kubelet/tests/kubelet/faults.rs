//! Bad input and faults on a real containerd: an image that is not there (pull policy Never —
//! until it appears in the images directory — and an unreachable registry), a command that
//! exits 1, a missing ConfigMap (the pod waits with CreateContainerConfigError and starts once
//! it exists), a privileged container on a node that does not allow them; containerd killed
//! (the managed containerd is restarted, the kubelet reconnects without duplicating
//! containers); the kubelet restarted (it adopts running pods instead of restarting them, and
//! removes what a pod force-deleted meanwhile left behind).

use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use rkube_kubelet::cri::Cri;
use rkube_kubelet::labels;

use crate::harness::*;

fn waiting(p: &Pod, name: &str) -> Option<(String, String)> {
    let w = container_status(p, name)?.state?.waiting?;
    Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

/// The ids of a pod's containers and the number of its sandboxes, as the runtime has them.
async fn in_runtime(cri: &Cri, uid: &str) -> (Vec<String>, usize) {
    let sel = [(labels::POD_UID, uid)];
    let containers = cri.list_containers(&sel).await.unwrap();
    let sandboxes = cri.list_pod_sandbox(&sel).await.unwrap();
    (
        containers.into_iter().map(|c| c.id).collect(),
        sandboxes.len(),
    )
}

async fn events_of(client: &kube::Client, pod: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_clear_statuses_and_events() {
    let cluster = Cluster::start().await;
    let mut node = TestNode::new(&cluster).await;
    node.start().await;
    let pods = cluster.pods();
    let c = |image: &str, script: &str| serde_json::json!({"name": "app", "image": image, "command": ["sh", "-c", script]});

    let mut never = c("example.org/late:1", "echo imported; exec sleep 3600");
    never["imagePullPolicy"] = "Never".into();
    create(
        &pods,
        &pod(
            &node.name,
            "never",
            serde_json::json!({"containers": [never]}),
        ),
    )
    .await;
    create(
        &pods,
        &pod(
            &node.name,
            "nopull",
            serde_json::json!({"containers": [c("127.0.0.1:1/absent:1", "true")]}),
        ),
    )
    .await;
    create(
        &pods,
        &pod(
            &node.name,
            "fails",
            serde_json::json!({"restartPolicy": "Never",
                               "containers": [c("busybox:1.35", "echo bad >&2; exit 1")]}),
        ),
    )
    .await;
    let mut needs_cm = c("busybox:1.35", "echo $SETTING; exec sleep 3600");
    needs_cm["env"] = serde_json::json!([{"name": "SETTING",
        "valueFrom": {"configMapKeyRef": {"name": "later", "key": "setting"}}}]);
    create(
        &pods,
        &pod(
            &node.name,
            "nocm",
            serde_json::json!({"containers": [needs_cm], "terminationGracePeriodSeconds": 1}),
        ),
    )
    .await;

    let mut privileged = c("busybox:1.35", "exec sleep 3600");
    privileged["securityContext"] = serde_json::json!({"privileged": true});
    create(
        &pods,
        &pod(
            &node.name,
            "privileged",
            serde_json::json!({"containers": [privileged]}),
        ),
    )
    .await;

    let p = wait_pod(&pods, "privileged", "refused", |p| {
        waiting(p, "app").is_some_and(|(r, _)| r == "CreateContainerConfigError")
    })
    .await;
    assert_eq!(
        waiting(&p, "app").unwrap().1,
        "container app is privileged, but privileged containers are not allowed on this node"
    );

    let p = wait_pod(&pods, "never", "ErrImageNeverPull", |p| {
        waiting(p, "app").is_some_and(|(r, _)| r == "ErrImageNeverPull")
    })
    .await;
    assert_eq!(
        waiting(&p, "app").unwrap().1,
        "Container image \"example.org/late:1\" is not present with pull policy of Never"
    );
    assert_eq!(phase(&p), Some("Pending"));
    // The image arrives in the images directory (as in an airgapped lab): it is imported and
    // the pod starts.
    rkube_images::busybox("example.org/late:1")
        .unwrap()
        .write(&node.images_dir().join("late.tar"))
        .unwrap();
    wait_pod(
        &pods,
        "never",
        "running once the image is imported",
        running,
    )
    .await;

    let p = wait_pod(&pods, "nopull", "ImagePullBackOff", |p| {
        waiting(p, "app").is_some_and(|(r, _)| r == "ImagePullBackOff")
    })
    .await;
    assert!(
        waiting(&p, "app")
            .unwrap()
            .1
            .starts_with("Back-off pulling image \"127.0.0.1:1/absent:1\": Failed to pull image"),
        "{:?}",
        waiting(&p, "app")
    );

    let p = wait_pod(&pods, "fails", "Failed", |p| phase(p) == Some("Failed")).await;
    let t = container_status(&p, "app")
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
    let logs = cluster.kubectl(&["logs", "fails"]).await;
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "bad\n");

    let p = wait_pod(&pods, "nocm", "CreateContainerConfigError", |p| {
        waiting(p, "app").is_some_and(|(r, _)| r == "CreateContainerConfigError")
    })
    .await;
    assert!(
        waiting(&p, "app")
            .unwrap()
            .1
            .contains("configmap \"later\" not found"),
        "{:?}",
        waiting(&p, "app")
    );
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "later"}, "data": {"setting": "now-there"}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    wait_pod(&pods, "nocm", "running once the ConfigMap exists", running).await;
    let logs = eventually("the container's output", || async {
        let out = cluster.kubectl(&["logs", "nocm"]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert_eq!(logs, "now-there\n");

    // Each failure has its event.
    for (pod, reason, message) in [
        (
            "never",
            "ErrImageNeverPull",
            "is not present with pull policy of Never",
        ),
        (
            "nopull",
            "Failed",
            "Failed to pull image \"127.0.0.1:1/absent:1\"",
        ),
        ("nopull", "BackOff", "Back-off pulling image"),
        ("nocm", "Failed", "configmap \"later\" not found"),
    ] {
        let client = cluster.client.clone();
        eventually(&format!("a {reason} event for {pod}"), || {
            let client = client.clone();
            async move {
                events_of(&client, pod)
                    .await
                    .iter()
                    .any(|(r, m)| r == reason && m.contains(message))
                    .then_some(())
            }
        })
        .await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_and_kubelet_restarts_keep_pods_running() {
    let cluster = Cluster::start().await;
    let mut node = TestNode::new(&cluster).await;
    node.start().await;
    let pods = cluster.pods();
    let sleeper = |name: &str| {
        pod(
            &node.name,
            name,
            serde_json::json!({
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "busybox:1.35",
                                "command": ["sh", "-c", "echo up; exec sleep 3600"]}]
            }),
        )
    };
    create(&pods, &sleeper("steady")).await;
    create(&pods, &sleeper("orphan")).await;
    let steady = wait_pod(&pods, "steady", "running", running).await;
    let orphan = wait_pod(&pods, "orphan", "running", running).await;
    let steady_id = container_id(&steady, "app");
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap();
    // containerd dies; the kubelet restarts it and carries on.
    let managed = node.kubelet.as_ref().unwrap().managed_containerd().unwrap();
    let mut starts = managed.starts.clone();
    let pid = managed.pid().expect("containerd's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::timeout(WAIT, starts.wait_for(|n| *n >= 2))
        .await
        .expect("containerd restarted")
        .unwrap();
    assert_ne!(managed.pid(), Some(pid));
    // A new pod runs: the kubelet talks to the new containerd.
    create(&pods, &sleeper("after")).await;
    wait_pod(
        &pods,
        "after",
        "running after the containerd restart",
        running,
    )
    .await;
    let p = pods.get("steady").await.unwrap();
    assert!(running(&p));
    assert_eq!(container_id(&p, "app"), steady_id);
    assert_eq!(container_status(&p, "app").unwrap().restart_count, 0);
    assert_eq!(
        in_runtime(&node.cri(), &uid(&steady)).await,
        (vec![steady_id.clone()], 1),
        "one container and one sandbox: nothing duplicated"
    );
    drop(managed);

    // The kubelet stops; a pod is force-deleted meanwhile; a new kubelet adopts the rest.
    node.stop_kubelet().await;
    pods.delete(
        "orphan",
        &kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    wait_gone(&pods, "orphan").await;
    node.start().await;
    let p = wait_pod(&pods, "steady", "running under the new kubelet", running).await;
    assert_eq!(container_id(&p, "app"), steady_id, "adopted, not restarted");
    assert_eq!(container_status(&p, "app").unwrap().restart_count, 0);
    let orphan_uid = uid(&orphan);
    let cri = node.cri();
    eventually("the orphan's containers and sandbox removed", || {
        let (cri, orphan_uid) = (cri.clone(), orphan_uid.clone());
        async move { (in_runtime(&cri, &orphan_uid).await == (vec![], 0)).then_some(()) }
    })
    .await;
    assert_eq!(
        in_runtime(&cri, &uid(&steady)).await,
        (vec![steady_id.clone()], 1)
    );
    let logs = cluster.kubectl(&["logs", "steady"]).await;
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "up\n");

    // Deleting works as usual under the new kubelet.
    delete(&pods, "steady", 1).await;
    wait_gone(&pods, "steady").await;
    assert_eq!(
        in_runtime(&cri, &uid(&steady)).await,
        (vec![], 0),
        "removed before the pod object"
    );
    node.shutdown().await;
}
