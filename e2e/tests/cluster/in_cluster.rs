//! In-cluster API access (issue 11): a pod on an agent reaches the API server through the
//! `kubernetes` Service (10.96.0.1:443, load-balanced by the agent's proxy to the server's
//! node) and authenticates with its projected ServiceAccount token, trusting the projected
//! `ca.crt` — with kube-rs' `Client::try_default()` (this very test binary, run in the pod) and
//! with the real kubectl (statically linked, so it runs in a busybox container as it is).
//! Its ServiceAccount is bound to `view`: it lists pods and is refused a create.

use k8s_openapi::api::core::v1::Pod;
use rkube_e2e::cluster::Cluster;
use rkube_testkit::in_cluster;

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
    let node = c.workers()[0].clone();
    let kubectl_script = "/k/kubectl get pods -o name; \
         echo \"CAN-I list=$(/k/kubectl auth can-i list pods) create=$(/k/kubectl auth can-i create pods)\"";
    let mut volumes = in_cluster::probe_volumes();
    volumes.push(serde_json::json!({"name": "kubectl", "hostPath": {"path": kubectl_dir()}}));
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": NS},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                in_cluster::probe_container(
                    "kube-rs",
                    rkube_images::BUSYBOX_REF,
                    "in_cluster::in_cluster_client",
                ),
                {
                    "name": "kubectl",
                    "image": rkube_images::BUSYBOX_REF,
                    "command": ["sh", "-c", kubectl_script],
                    "volumeMounts": [{"name": "kubectl", "mountPath": "/k", "readOnly": true}],
                },
            ],
            "volumes": volumes,
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
    let listed = in_cluster::listed_pods(&kube_rs).unwrap_or_else(|| panic!("{kube_rs}"));
    assert!(listed.iter().any(|p| p == "client"), "{kube_rs}");
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
    in_cluster::report();
}
