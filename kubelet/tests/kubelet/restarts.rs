//! Restarts and health on a real containerd: a crashing container goes to CrashLoopBackOff with
//! growing restart counts and its last state; a failing liveness probe restarts a container; a
//! container over its memory limit is OOMKilled; restartPolicy OnFailure and Never, init
//! containers running in order before the app container, `kubectl logs --previous`, and the
//! security context (user, read-only root, capabilities, no new privileges) in the container.

use k8s_openapi::api::core::v1::Pod;

use crate::harness::*;

fn restarts(p: &Pod, name: &str) -> i32 {
    container_status(p, name)
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

fn waiting_reason(p: &Pod, name: &str) -> Option<String> {
    container_status(p, name)?.state?.waiting?.reason
}

fn terminated(p: &Pod, name: &str) -> Option<(i32, String)> {
    let t = container_status(p, name)?.state?.terminated?;
    Some((t.exit_code, t.reason.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_liveness_oom_and_restart_policies() {
    let cluster = Cluster::start().await;
    let mut node = TestNode::new(&cluster).await;
    node.start().await;
    let pods = cluster.pods();
    let busybox = |name: &str, script: &str| serde_json::json!({"name": name, "image": "busybox:1.35", "command": ["sh", "-c", script]});

    create(
        &pods,
        &pod(
            &node.name,
            "crash",
            serde_json::json!({"containers": [busybox("app", "echo crashing; exit 3")]}),
        ),
    )
    .await;
    let mut live = busybox("app", "touch /tmp/healthy; exec sleep 3600");
    live["livenessProbe"] = serde_json::json!({
        "exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2
    });
    create(
        &pods,
        &pod(
            &node.name,
            "live",
            serde_json::json!({"containers": [live], "terminationGracePeriodSeconds": 2}),
        ),
    )
    .await;
    let mut hog = busybox("hog", "exec tail /dev/zero");
    hog["resources"] = serde_json::json!({"limits": {"memory": "32Mi"}});
    create(
        &pods,
        &pod(
            &node.name,
            "oom",
            serde_json::json!({"restartPolicy": "Never", "containers": [hog]}),
        ),
    )
    .await;
    let mut secure = busybox("app", "exec sleep 3600");
    secure["securityContext"] = serde_json::json!({
        "runAsUser": 1000, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    });
    secure["volumeMounts"] = serde_json::json!([{"name": "tmp", "mountPath": "/tmp"}]);
    create(
        &pods,
        &pod(
            &node.name,
            "secure",
            serde_json::json!({"containers": [secure], "terminationGracePeriodSeconds": 1,
                               "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}]}),
        ),
    )
    .await;
    let with_work = |mut c: serde_json::Value| {
        c["volumeMounts"] = serde_json::json!([{"name": "work", "mountPath": "/work"}]);
        c
    };
    create(
        &pods,
        &pod(
            &node.name,
            "once",
            serde_json::json!({
                "restartPolicy": "OnFailure",
                "initContainers": [
                    with_work(busybox("first", "echo first > /work/order")),
                    with_work(busybox("second", "echo second >> /work/order"))
                ],
                "containers": [with_work(busybox("main", "cat /work/order; exit 0"))],
                "volumes": [{"name": "work", "emptyDir": {}}]
            }),
        ),
    )
    .await;

    // The crash loop: restarts grow, the container backs off, the last state is kept.
    let p = wait_pod(&pods, "crash", "CrashLoopBackOff after 2 restarts", |p| {
        restarts(p, "app") >= 2 && waiting_reason(p, "app").as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    let last = container_status(&p, "app")
        .and_then(|c| c.last_state)
        .and_then(|s| s.terminated)
        .expect("last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    let before = restarts(&p, "app");
    wait_pod(&pods, "crash", "another restart", |p| {
        restarts(p, "app") > before
    })
    .await;
    let previous = cluster.kubectl(&["logs", "crash", "--previous"]).await;
    assert_eq!(String::from_utf8_lossy(&previous.stdout), "crashing\n");

    // The security context reaches the container.
    let p = wait_pod(&pods, "secure", "running", running).await;
    let cri = node.cri();
    let id = container_id(&p, "app");
    assert_eq!(exec(&cri, &id, &["id", "-u"]).await.1.trim(), "1000");
    let (code, _) = exec(&cri, &id, &["touch", "/written"]).await;
    assert_ne!(code, 0, "the root filesystem is read-only");
    assert_eq!(
        exec(&cri, &id, &["touch", "/tmp/ok"]).await.0,
        0,
        "emptyDir is writable"
    );
    let status = exec(&cri, &id, &["cat", "/proc/1/status"]).await.1;
    let caps: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("CapBnd:") || l.starts_with("NoNewPrivs:"))
        .collect();
    assert_eq!(
        caps,
        ["CapBnd:\t0000000000000400", "NoNewPrivs:\t1"],
        "{status}"
    );

    // Liveness: remove the file the probe reads; the container is restarted.
    let p = wait_pod(&pods, "live", "running", running).await;
    let first = container_id(&p, "app");
    assert_eq!(exec(&cri, &first, &["rm", "/tmp/healthy"]).await.0, 0);
    let p = wait_pod(&pods, "live", "restarted by its liveness probe", |p| {
        restarts(p, "app") >= 1 && running(p)
    })
    .await;
    assert_ne!(container_id(&p, "app"), first);
    let last = container_status(&p, "app")
        .and_then(|c| c.last_state)
        .and_then(|s| s.terminated)
        .expect("last state");
    assert_eq!(
        last.container_id.as_deref().map(|c| c.ends_with(&first)),
        Some(true)
    );

    // The memory hog is OOMKilled and, with restartPolicy Never, the pod fails.
    let p = wait_pod(&pods, "oom", "OOMKilled", |p| {
        terminated(p, "hog").is_some_and(|(_, r)| r == "OOMKilled")
    })
    .await;
    assert_eq!(terminated(&p, "hog").unwrap().0, 137);
    wait_pod(&pods, "oom", "Failed", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
    })
    .await;

    // Init containers ran in order; the app container exited 0 and is not restarted.
    let p = wait_pod(&pods, "once", "Succeeded", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
    })
    .await;
    assert_eq!(terminated(&p, "main"), Some((0, "Completed".to_string())));
    assert_eq!(restarts(&p, "main"), 0);
    let inits = p
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap();
    assert_eq!(
        inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    let logs = cluster.kubectl(&["logs", "once", "-c", "main"]).await;
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "first\nsecond\n");
    node.shutdown().await;
}
