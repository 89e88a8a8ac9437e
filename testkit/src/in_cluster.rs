//! In-cluster clients for whole-cluster tests: a pod runs the test binary itself (mounted from
//! the host with the C libraries it links, busybox has none) as an ignored test that calls
//! [`report`], which lists pods with kube-rs' in-cluster configuration and tries a create,
//! printing `IN-CLUSTER …` lines the test then reads from the pod's log.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The prefix of every line [`report`] prints.
pub const PREFIX: &str = "IN-CLUSTER ";

/// A container `name` (image `image`) that runs the ignored test `test` (its full path, e.g.
/// `in_cluster::client`) of the current test binary, with the mounts of [`probe_volumes`].
pub fn probe_container(name: &str, image: &str, test: &str) -> Value {
    let exe = std::env::current_exe().expect("the test executable");
    let file = exe.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    json!({
        "name": name,
        "image": image,
        "command": [format!("/probe/{file}"), "--ignored", "--exact", test, "--nocapture"],
        "volumeMounts": [
            {"name": "probe", "mountPath": "/probe", "readOnly": true},
            {"name": "lib", "mountPath": "/lib/x86_64-linux-gnu", "readOnly": true},
            {"name": "lib64", "mountPath": "/lib64", "readOnly": true},
        ],
    })
}

/// The hostPath volumes `probe` (the test binary's directory), `lib` and `lib64` (the C
/// libraries it links) of [`probe_container`]; they need a namespace whose Pod Security level
/// is `privileged`.
pub fn probe_volumes() -> Vec<Value> {
    let exe = std::env::current_exe().expect("the test executable");
    let dir = exe.parent().expect("the test executable's directory");
    vec![
        json!({"name": "probe", "hostPath": {"path": dir}}),
        json!({"name": "lib", "hostPath": {"path": "/usr/lib/x86_64-linux-gnu"}}),
        json!({"name": "lib64", "hostPath": {"path": "/lib64"}}),
    ]
}

/// Run inside the pod: prints the projected namespace (`IN-CLUSTER namespace=NS`), the
/// `kubernetes` Service's address from the environment (`IN-CLUSTER host=IP:PORT`), the pods of
/// the namespace listed with `kube::Client::try_default()` (`IN-CLUSTER pods=a,b`), and the
/// status code of a refused pod create (`IN-CLUSTER create refused: 403`).
///
/// # Panics
/// When there is no in-cluster configuration, the list fails, or the create is allowed.
pub fn report() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let ns = std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .expect("the projected namespace");
        println!("{PREFIX}namespace={ns}");
        let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        println!("{PREFIX}host={host}:{port}");
        let client = kube::Client::try_default()
            .await
            .expect("the in-cluster configuration");
        let pods: kube::Api<Pod> = kube::Api::default_namespaced(client);
        let list = pods.list(&Default::default()).await.expect("list pods");
        let names: Vec<String> = list
            .items
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        println!("{PREFIX}pods={}", names.join(","));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "not-allowed"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}
        }))
        .expect("a pod");
        match pods.create(&Default::default(), &pod).await {
            Err(kube::Error::Api(s)) => println!("{PREFIX}create refused: {}", s.code),
            other => panic!("the create was not refused: {other:?}"),
        }
    });
}

/// The pods [`report`] listed, from the pod's log.
pub fn listed_pods(log: &str) -> Option<Vec<String>> {
    log.lines()
        .find_map(|l| l.strip_prefix(PREFIX)?.strip_prefix("pods="))
        .map(|p| {
            p.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
}
