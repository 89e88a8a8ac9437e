//! Pulling from a private registry (a real docker-registry with htpasswd auth in the node's
//! namespace): without credentials, or with a wrong password, the pull fails (ErrImagePull →
//! ImagePullBackOff, the registry's 401 in the message); with a dockerconfigjson
//! `imagePullSecret` the kubelet hands the credentials to containerd and the pod runs.

use base64::Engine;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, PostParams};

use crate::harness::*;

const IMAGE: &str = "127.0.0.1:5000/private/busybox:1";

async fn docker_secret(client: &kube::Client, name: &str, password: &str) {
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", REGISTRY_USER.0));
    let config = serde_json::json!({"auths": {"127.0.0.1:5000": {"auth": auth}}});
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn pull_waiting(p: &k8s_openapi::api::core::v1::Pod) -> Option<(String, String)> {
    let w = container_status(p, "app")?.state?.waiting?;
    Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_registry_needs_the_pull_secret() {
    let cluster = Cluster::start().await;
    let mut node = TestNode::new(&cluster).await;
    node.start().await;
    let registry = node.start_registry().await;
    let mut image = rkube_images::busybox(IMAGE).unwrap();
    image.cmd = vec![
        "sh".into(),
        "-c".into(),
        "echo pulled from the registry; exec sleep 3600".into(),
    ];
    registry.push(&image, "private/busybox", "1").await;
    docker_secret(&cluster.client, "regcred", REGISTRY_USER.1).await;
    docker_secret(&cluster.client, "badcred", "wrong").await;
    let pods = cluster.pods();
    let spec = |secret: Option<&str>| {
        let mut spec = serde_json::json!({
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Always"}]
        });
        if let Some(s) = secret {
            spec["imagePullSecrets"] = serde_json::json!([{"name": s}]);
        }
        spec
    };
    create(&pods, &pod(&node.name, "anonymous", spec(None))).await;
    create(&pods, &pod(&node.name, "wrong", spec(Some("badcred")))).await;
    create(&pods, &pod(&node.name, "authed", spec(Some("regcred")))).await;

    let p = wait_pod(&pods, "authed", "running with the pull secret", running).await;
    let status = container_status(&p, "app").unwrap();
    assert!(status.image_id.contains("sha256:"), "{}", status.image_id);
    let logs = cluster.kubectl(&["logs", "authed"]).await;
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "pulled from the registry\n"
    );
    for name in ["anonymous", "wrong"] {
        let p = wait_pod(&pods, name, "ImagePullBackOff", |p| {
            pull_waiting(p).is_some_and(|(r, _)| r == "ImagePullBackOff")
        })
        .await;
        let (_, message) = pull_waiting(&p).unwrap();
        assert!(
            message.contains("401 Unauthorized"),
            "{name}: the registry's refusal is in the message: {message}"
        );
        assert!(running(&pods.get("authed").await.unwrap()));
    }
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
    eventually("a Pulled event for the authed pod", || {
        let events = events.clone();
        async move {
            let items = events.list(&ListParams::default()).await.ok()?.items;
            items
                .into_iter()
                .any(|e| {
                    e.involved_object.name.as_deref() == Some("authed")
                        && e.reason.as_deref() == Some("Pulled")
                        && e.message.as_deref().is_some_and(|m| {
                            m.starts_with(&format!("Successfully pulled image \"{IMAGE}\""))
                        })
                })
                .then_some(())
        }
    })
    .await;
    drop(registry);
    node.shutdown().await;
}
