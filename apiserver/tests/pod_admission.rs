//! What makes pods able to use the API from inside the cluster, and what keeps them from the
//! host, against an API server started in-process, with kube-rs and the real kubectl: the
//! `kubernetes` Service and its endpoints (restored when deleted), the `kube-root-ca.crt`
//! ConfigMap, the ServiceAccount admission's projected token volume (and its opt-outs), and
//! Pod Security admission (baseline by default, namespace labels, warnings, invalid labels).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const ADVERTISED: &str = "192.0.2.10";

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pod(name: &str, extra: serde_json::Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "a", "image": "busybox:1.35"},
                                {"name": "b", "image": "busybox:1.35"}]},
    });
    if let (Some(spec), Some(e)) = (v["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(e.clone());
    }
    serde_json::from_value(v).unwrap()
}

fn access_volumes(p: &Pod) -> Vec<String> {
    p.spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.name.starts_with("kube-api-access-"))
        .map(|v| v.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_service_and_service_account_tokens() {
    let s = TestServer::start_with(Backend::Embedded, |c| {
        c.advertise_address = Some(ADVERTISED.parse().unwrap());
    })
    .await;
    let client = s.client().await;
    let port: u16 = s.addr().rsplit(':').next().unwrap().parse().unwrap();

    // The Service, its Endpoints and EndpointSlice.
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = eventually("the kubernetes Service", || async {
        svcs.get_opt("kubernetes").await.unwrap()
    })
    .await;
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    let p = &spec.ports.unwrap()[0];
    assert_eq!((p.name.as_deref(), p.port), (Some("https"), 443));
    assert!(spec.selector.is_none());
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let endpoint = || async {
        let e = eps.get_opt("kubernetes").await.unwrap()?;
        let subset = e.subsets?.pop()?;
        Some(format!(
            "{}:{}",
            subset.addresses?.pop()?.ip,
            subset.ports?.pop()?.port
        ))
    };
    assert_eq!(
        eventually("the kubernetes endpoints", endpoint).await,
        format!("{ADVERTISED}:{port}")
    );
    let out = s.kubectl_ok(&["get", "endpointslice", "kubernetes", "--no-headers"]);
    assert!(
        out.contains(&format!("IPv4   {port}   {ADVERTISED}")),
        "{out}"
    );
    let out = s.kubectl_ok(&["get", "svc", "kubernetes", "--no-headers"]);
    let cols: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        cols[..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        "{out}"
    );
    // Deleted, they come back (the reconciler runs every 10 s).
    eps.delete("kubernetes", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        eventually("the kubernetes endpoints restored", endpoint).await,
        format!("{ADVERTISED}:{port}")
    );

    // ServiceAccount admission: the token, CA and namespace in every container.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("plain", json!({})))
        .await
        .unwrap();
    let vols = access_volumes(&p);
    assert_eq!(vols.len(), 1, "{p:?}");
    let spec = p.spec.clone().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    for c in &spec.containers {
        let m = c.volume_mounts.as_ref().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, vols[0]);
        assert_eq!(
            m[0].mount_path,
            "/var/run/secrets/kubernetes.io/serviceaccount"
        );
        assert_eq!(m[0].read_only, Some(true));
    }
    let vol = spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == vols[0])
        .unwrap();
    let sources = vol.projected.unwrap().sources.unwrap();
    let token = sources[0].service_account_token.as_ref().unwrap();
    assert_eq!(
        (token.path.as_str(), token.expiration_seconds),
        ("token", Some(3607))
    );
    assert_eq!(
        sources[1].config_map.as_ref().unwrap().name,
        "kube-root-ca.crt"
    );
    assert_eq!(
        sources[2]
            .downward_api
            .as_ref()
            .unwrap()
            .items
            .as_ref()
            .unwrap()[0]
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.namespace"
    );
    // Opting out: on the pod, or on its ServiceAccount.
    let p = pods
        .create(
            &PostParams::default(),
            &pod("no-token", json!({"automountServiceAccountToken": false})),
        )
        .await
        .unwrap();
    assert!(access_volumes(&p).is_empty());
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "quiet"},
                                       "automountServiceAccountToken": false}))
        .unwrap(),
    )
    .await
    .unwrap();
    let p = pods
        .create(
            &PostParams::default(),
            &pod("quiet", json!({"serviceAccountName": "quiet"})),
        )
        .await
        .unwrap();
    assert!(access_volumes(&p).is_empty());
    // ... and the pod's own choice wins over the ServiceAccount's.
    let p = pods
        .create(
            &PostParams::default(),
            &pod(
                "quiet-but-mounted",
                json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(access_volumes(&p).len(), 1);

    // The token the volume asks for: a TokenRequest bound to the pod, what the kubelet does.
    let sa = s.kubectl_ok(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=plain",
        "--duration=3607s",
    ]);
    assert_eq!(sa.trim().split('.').count(), 3, "{sa}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_levels() {
    let s = TestServer::start(Backend::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host.yaml");
    std::fs::write(
        &host,
        "apiVersion: v1
kind: Pod
metadata:
  name: host
spec:
  hostNetwork: true
  containers:
  - name: c
    image: busybox:1.35
    securityContext:
      privileged: true
    volumeMounts:
    - {name: root, mountPath: /host}
  volumes:
  - name: root
    hostPath:
      path: /
",
    )
    .unwrap();
    let f = host.to_str().unwrap();
    // baseline by default.
    let err = s.kubectl_err(&["apply", "-f", f]);
    assert!(
        err.contains(
            "pods \"host\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true), privileged (container \"c\" must not set securityContext.privileged=true), hostPath volumes (volume \"root\")"
        ),
        "{err}"
    );
    // Not in kube-system, nor where the namespace allows it.
    s.kubectl_ok(&["apply", "-n", "kube-system", "-f", f]);
    s.kubectl_ok(&["create", "namespace", "lab"]);
    s.kubectl_ok(&[
        "label",
        "namespace",
        "lab",
        "pod-security.kubernetes.io/enforce=privileged",
        "pod-security.kubernetes.io/warn=baseline",
    ]);
    let out = s.kubectl(&["apply", "-n", "lab", "-f", f]);
    assert!(out.status.success());
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("Warning: would violate PodSecurity \"baseline:latest\": host namespaces"),
        "{warning}"
    );
    // restricted: a plain pod is refused, a hardened one admitted.
    s.kubectl_ok(&["create", "namespace", "strict"]);
    s.kubectl_ok(&[
        "label",
        "namespace",
        "strict",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let err = s.kubectl_err(&[
        "run",
        "plain",
        "-n",
        "strict",
        "--image=busybox:1.35",
        "--restart=Never",
    ]);
    assert!(
        err.contains(
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
        ),
        "{err}"
    );
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "strict");
    let hardened: Pod = serde_json::from_value(json!({
        "metadata": {"name": "hardened"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox:1.35", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &hardened)
        .await
        .unwrap();
    // A label that names no level is refused.
    let err = s.kubectl_err(&[
        "label",
        "namespace",
        "lab",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=strict",
    ]);
    assert!(
        err.contains("invalid Pod Security level \"strict\""),
        "{err}"
    );
}
