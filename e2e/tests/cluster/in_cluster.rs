//! In-cluster API access (issue 11): a pod on an agent reaches the API server through the
//! `kubernetes` Service (10.96.0.1:443, load-balanced by the agent's proxy to the server's
//! node) and authenticates with its projected ServiceAccount token, trusting the projected
//! `ca.crt` — with kube-rs' `Client::try_default()` (this very test binary, run in the pod) and
//! with the real kubectl (statically linked, so it runs in a busybox container as it is).
//! Its ServiceAccount is bound to `view`: it lists pods and is refused a create.

use k8s_openapi::api::core::v1::Pod;
use rkube_e2e::cluster::Cluster;

use crate::common;

const NS: &str = "incluster";

/// The directory of the real kubectl (a static executable) on the machine.
fn kubectl_dir() -> std::path::PathBuf {
    let kubectl = std::fs::canonicalize("/usr/bin/kubectl").expect("kubectl is installed");
    kubectl.parent().unwrap().to_path_buf()
}

#[test]
fn pod_lists_pods_with_its_service_account_token() {
    let c = Cluster::start(common::spec());
    // hostPath volumes (the test binary, its C libraries, kubectl) need the privileged level.
    c.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NS}\n  labels:\n    \
         pod-security.kubernetes.io/enforce: privileged\n"
    ));
    c.kubectl_ok(&[
        "create",
        "rolebinding",
        "default-view",
        "-n",
        NS,
        "--clusterrole=view",
        &format!("--serviceaccount={NS}:default"),
    ]);
    let exe = std::env::current_exe().unwrap();
    let node = c.workers()[0].clone();
    let kubectl_script = "/k/kubectl get pods -o name; \
         echo \"CAN-I list=$(/k/kubectl auth can-i list pods) create=$(/k/kubectl auth can-i create pods)\"";
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": NS},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "kube-rs",
                    "image": rkube_images::BUSYBOX_REF,
                    "command": [
                        format!("/probe/{}", exe.file_name().unwrap().to_str().unwrap()),
                        "--ignored", "--exact", "in_cluster::in_cluster_client", "--nocapture",
                    ],
                    "volumeMounts": [
                        {"name": "probe", "mountPath": "/probe", "readOnly": true},
                        {"name": "lib", "mountPath": "/lib/x86_64-linux-gnu", "readOnly": true},
                        {"name": "lib64", "mountPath": "/lib64", "readOnly": true},
                    ],
                },
                {
                    "name": "kubectl",
                    "image": rkube_images::BUSYBOX_REF,
                    "command": ["sh", "-c", kubectl_script],
                    "volumeMounts": [{"name": "kubectl", "mountPath": "/k", "readOnly": true}],
                },
            ],
            "volumes": [
                {"name": "probe", "hostPath": {"path": exe.parent().unwrap()}},
                {"name": "lib", "hostPath": {"path": "/usr/lib/x86_64-linux-gnu"}},
                {"name": "lib64", "hostPath": {"path": "/lib64"}},
                {"name": "kubectl", "hostPath": {"path": kubectl_dir()}},
            ],
        },
    });
    c.apply(&pod.to_string());

    let p: Pod = c.eventually("the client pod ending", |c| {
        let p: Pod = c.get(&["pod", "-n", NS, "client"])?;
        let phase = p.status.as_ref()?.phase.clone()?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(p)
    });
    let kube_rs = c.logs(NS, "client", "kube-rs");
    let kubectl = c.logs(NS, "client", "kubectl");
    let phase = p.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(
        phase.as_deref(),
        Some("Succeeded"),
        "kube-rs:\n{kube_rs}\nkubectl:\n{kubectl}"
    );
    let spec = p.spec.unwrap();
    assert!(
        spec.volumes
            .unwrap_or_default()
            .iter()
            .any(|v| v.name.starts_with("kube-api-access-") && v.projected.is_some()),
        "no projected token volume"
    );

    // kube-rs: the in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, the token, ca.crt).
    assert!(
        kube_rs.contains(&format!("IN-CLUSTER namespace={NS}")),
        "{kube_rs}"
    );
    assert!(
        kube_rs.contains("IN-CLUSTER host=10.96.0.1:443"),
        "{kube_rs}"
    );
    let listed = kube_rs
        .lines()
        .find_map(|l| l.strip_prefix("IN-CLUSTER pods="))
        .unwrap_or_else(|| panic!("{kube_rs}"));
    assert!(listed.split(',').any(|p| p == "client"), "{kube_rs}");
    assert!(
        kube_rs.contains("IN-CLUSTER create refused: 403"),
        "{kube_rs}"
    );

    // The real kubectl, with no kubeconfig: its in-cluster configuration.
    assert!(kubectl.lines().any(|l| l == "pod/client"), "{kubectl}");
    assert!(kubectl.contains("CAN-I list=yes create=no"), "{kubectl}");
}

/// Not a test of its own: [`pod_lists_pods_with_its_service_account_token`] runs it inside a
/// pod. It lists the pods of its namespace with kube-rs' default client (the in-cluster
/// configuration) and tries a create its `view` binding does not allow.
#[test]
#[ignore = "runs inside a pod, started by pod_lists_pods_with_its_service_account_token"]
fn in_cluster_client() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ns = std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .expect("projected namespace");
        println!("IN-CLUSTER namespace={ns}");
        let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        println!("IN-CLUSTER host={host}:{port}");
        let client = kube::Client::try_default()
            .await
            .expect("in-cluster config");
        let pods: kube::Api<Pod> = kube::Api::default_namespaced(client);
        let list = pods.list(&Default::default()).await.expect("list pods");
        let names: Vec<String> = list
            .items
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        println!("IN-CLUSTER pods={}", names.join(","));
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "not-allowed"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}
        }))
        .unwrap();
        match pods.create(&Default::default(), &pod).await {
            Err(kube::Error::Api(s)) => println!("IN-CLUSTER create refused: {}", s.code),
            other => panic!("a view binding allowed a create: {other:?}"),
        }
    });
}
