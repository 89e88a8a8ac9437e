//! PriorityClasses and Priority admission against an API server started in-process: the
//! built-in classes, validation (value cap, the reserved `system-` prefix, immutable value and
//! preemption policy, one global default, undeletable built-ins), the priority a pod gets from
//! its class or the global default, the refusals upstream answers (unknown class, a priority or
//! preemption policy that differs from the class's), with kube-rs (on the embedded store and a
//! real etcd) and with the real kubectl (`get pc`, `apply -f`, `create priorityclass`,
//! `explain`, `api-resources`), plus malformed input.

mod common;

use common::{Backend, TestServer};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::json;

fn class(name: &str, value: i32, extra: serde_json::Value) -> PriorityClass {
    let mut v = json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, spec_extra: serde_json::Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(o), Some(e)) = (spec.as_object_mut(), spec_extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// The API error of a failed call: (code, reason, message).
fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn priority_of(p: &Pod) -> (Option<i32>, Option<String>, Option<String>) {
    let spec = p.spec.clone().unwrap();
    (
        spec.priority,
        spec.preemption_policy,
        spec.priority_class_name,
    )
}

async fn priority_classes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let client = s.client().await;
    let pcs: Api<PriorityClass> = Api::all(client.clone());

    // The built-in classes exist from the start.
    let node = pcs.get("system-node-critical").await.unwrap();
    assert_eq!(node.value, 2_000_001_000);
    assert_eq!(
        node.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    assert!(node.description.unwrap().contains("must not be moved"));
    let cluster = pcs.get("system-cluster-critical").await.unwrap();
    assert_eq!(cluster.value, 2_000_000_000);
    assert_ne!(cluster.global_default, Some(true));
    let names: Vec<String> = pcs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["system-cluster-critical", "system-node-critical"]);

    // A user class: defaults filled, stored as given.
    let pp = PostParams::default();
    let high = pcs
        .create(
            &pp,
            &class("high", 1_000_000_000, json!({"description": "important"})),
        )
        .await
        .unwrap();
    assert_eq!(high.value, 1_000_000_000);
    assert_eq!(
        high.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    assert!(high.metadata.namespace.is_none());

    // Validation: the cap on user values, the reserved prefix, the policy values.
    let (code, reason, msg) = api_error(
        pcs.create(&pp, &class("higher", 1_000_000_001, json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{msg}");
    assert!(
        msg.contains("maximum allowed value of a user defined priority is 1000000000"),
        "{msg}"
    );
    let (code, _, msg) = api_error(pcs.create(&pp, &class("system-mine", 5, json!({}))).await);
    assert_eq!(code, 422);
    assert!(
        msg.contains("priority class names with 'system-' prefix are reserved for system use only"),
        "{msg}"
    );
    let (code, _, msg) = api_error(
        pcs.create(
            &pp,
            &class("odd", 5, json!({"preemptionPolicy": "Sometimes"})),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(msg.contains("Unsupported value: \"Sometimes\""), "{msg}");

    // value and preemptionPolicy are immutable; the description is not.
    let mut changed = pcs.get("high").await.unwrap();
    changed.value = 5;
    let (code, _, msg) = api_error(pcs.replace("high", &pp, &changed).await);
    assert_eq!(code, 422);
    assert!(
        msg.contains("value: Forbidden: may not be changed in an update."),
        "{msg}"
    );
    let (code, _, msg) = api_error(
        pcs.patch(
            "high",
            &PatchParams::default(),
            &Patch::Merge(json!({"preemptionPolicy": "Never"})),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(msg.contains("preemptionPolicy"), "{msg}");
    let patched = pcs
        .patch(
            "high",
            &PatchParams::default(),
            &Patch::Merge(json!({"description": "very important"})),
        )
        .await
        .unwrap();
    assert_eq!(patched.description.as_deref(), Some("very important"));

    // Only one global default.
    pcs.create(&pp, &class("everyone", 10, json!({"globalDefault": true})))
        .await
        .unwrap();
    let (code, reason, msg) = api_error(
        pcs.create(&pp, &class("second", 20, json!({"globalDefault": true})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "priorityclasses.scheduling.k8s.io \"second\" is forbidden: PriorityClass everyone is already marked as default. Only one default can exist"
    );
    let (code, _, msg) = api_error(
        pcs.patch(
            "high",
            &PatchParams::default(),
            &Patch::Merge(json!({"globalDefault": true})),
        )
        .await,
    );
    assert_eq!(code, 403, "{msg}");
    // The default itself may still be updated.
    pcs.patch(
        "everyone",
        &PatchParams::default(),
        &Patch::Merge(json!({"description": "the default"})),
    )
    .await
    .unwrap();
    // Un-defaulting it frees the role.
    pcs.patch(
        "everyone",
        &PatchParams::default(),
        &Patch::Merge(json!({"globalDefault": false})),
    )
    .await
    .unwrap();
    pcs.patch(
        "high",
        &PatchParams::default(),
        &Patch::Merge(json!({"globalDefault": true})),
    )
    .await
    .unwrap();

    // The built-in classes cannot be deleted; others can.
    let (code, _, msg) = api_error(
        pcs.delete("system-node-critical", &DeleteParams::default())
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        "priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a system priority class and cannot be deleted"
    );
    assert!(pcs.get_opt("system-node-critical").await.unwrap().is_some());
    pcs.delete("everyone", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pcs.get_opt("everyone").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn priority_classes_on_embedded_store() {
    Box::pin(priority_classes(Backend::Embedded)).await;
}

async fn pod_admission(backend: Backend) {
    let s = TestServer::start(backend).await;
    let client = s.client().await;
    let pcs: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // No class and no global default: priority 0, PreemptLowerPriority, no class name.
    let p = pods.create(&pp, &pod("plain", json!({}))).await.unwrap();
    assert_eq!(
        priority_of(&p),
        (Some(0), Some("PreemptLowerPriority".into()), None)
    );

    // A named class sets priority and preemption policy; a class created just before counts.
    pcs.create(
        &pp,
        &class("polite", 500, json!({"preemptionPolicy": "Never"})),
    )
    .await
    .unwrap();
    let p = pods
        .create(&pp, &pod("nice", json!({"priorityClassName": "polite"})))
        .await
        .unwrap();
    assert_eq!(
        priority_of(&p),
        (Some(500), Some("Never".into()), Some("polite".into()))
    );
    let p = pods
        .create(
            &pp,
            &pod(
                "critical",
                json!({"priorityClassName": "system-node-critical"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().priority, Some(2_000_001_000));

    // Matching values are accepted; differing ones are refused like upstream.
    pods.create(
        &pp,
        &pod(
            "explicit",
            json!({"priorityClassName": "polite", "priority": 500, "preemptionPolicy": "Never"}),
        ),
    )
    .await
    .unwrap();
    let (code, reason, msg) = api_error(
        pods.create(
            &pp,
            &pod(
                "greedy",
                json!({"priorityClassName": "polite", "priority": 7}),
            ),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "pods \"greedy\" is forbidden: the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 500 from the given PriorityClass name"
    );
    let (code, _, msg) = api_error(
        pods.create(
            &pp,
            &pod(
                "pushy",
                json!({"priorityClassName": "polite", "preemptionPolicy": "PreemptLowerPriority"}),
            ),
        )
        .await,
    );
    assert_eq!(code, 403);
    assert!(
        msg.contains("the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never"),
        "{msg}"
    );
    let (code, _, msg) = api_error(
        pods.create(&pp, &pod("sneaky", json!({"priority": 1000})))
            .await,
    );
    assert_eq!(code, 403);
    assert!(
        msg.contains("computed 0 from the given PriorityClass name"),
        "{msg}"
    );

    // An unknown class is refused.
    let (code, reason, msg) = api_error(
        pods.create(&pp, &pod("x", json!({"priorityClassName": "foo"})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "pods \"x\" is forbidden: no PriorityClass with name foo was found"
    );
    assert!(pods.get_opt("x").await.unwrap().is_none());

    // A dry run is admitted the same way (and persists nothing).
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let p = pods
        .create(&dry, &pod("dry", json!({"priorityClassName": "polite"})))
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().priority, Some(500));
    assert!(pods.get_opt("dry").await.unwrap().is_none());
    assert_eq!(
        api_error(
            pods.create(&dry, &pod("dry", json!({"priorityClassName": "foo"})))
                .await
        )
        .0,
        403
    );

    // With a global default, pods without a class get its value and name. The default is read
    // from the watch cache (as upstream reads it from a lister): wait until the cache has it.
    pcs.create(&pp, &class("standard", 100, json!({"globalDefault": true})))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let p = pods.create(&dry, &pod("probe", json!({}))).await.unwrap();
        if p.spec.unwrap().priority == Some(100) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the global default class never applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let p = pods
        .create(&pp, &pod("defaulted", json!({})))
        .await
        .unwrap();
    assert_eq!(
        priority_of(&p),
        (
            Some(100),
            Some("PreemptLowerPriority".into()),
            Some("standard".into())
        )
    );
    let (code, _, msg) = api_error(pods.create(&pp, &pod("zero", json!({"priority": 0}))).await);
    assert_eq!(code, 403);
    assert!(msg.contains("computed 100"), "{msg}");
    // A pod naming a class is not affected by the default.
    let p = pods
        .create(&pp, &pod("named", json!({"priorityClassName": "polite"})))
        .await
        .unwrap();
    assert_eq!(p.spec.unwrap().priority, Some(500));

    // Updates keep the priority, also when the new object leaves it out; it cannot change.
    let mut stored = pods.get("nice").await.unwrap();
    let spec = stored.spec.as_mut().unwrap();
    spec.priority = None;
    spec.preemption_policy = None;
    spec.containers[0].image = Some("busybox:1.36".into());
    let p = pods.replace("nice", &pp, &stored).await.unwrap();
    assert_eq!(
        priority_of(&p),
        (Some(500), Some("Never".into()), Some("polite".into()))
    );
    assert_eq!(
        p.spec.unwrap().containers[0].image.as_deref(),
        Some("busybox:1.36")
    );
    let (code, _, _) = api_error(
        pods.patch(
            "nice",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"priority": 1}})),
        )
        .await,
    );
    assert_eq!(code, 422);

    // Deleting a class leaves the priority of its pods as it was.
    pcs.delete("polite", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        pods.get("nice").await.unwrap().spec.unwrap().priority,
        Some(500)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_priority_admission_on_embedded_store() {
    Box::pin(pod_admission(Backend::Embedded)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_priority_admission_on_etcd() {
    Box::pin(pod_admission(Backend::Etcd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_priority_input_is_refused() {
    let s = TestServer::start(Backend::Embedded).await;
    let client = s.client().await;
    let raw: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<PriorityClass>(&()));
    let pp = PostParams::default();
    let obj = |v: serde_json::Value| -> DynamicObject { serde_json::from_value(v).unwrap() };

    // Not an integer, and out of int32 range: 400 BadRequest.
    for value in [json!("high"), json!(3_000_000_000_i64), json!(1.5)] {
        let (code, reason, msg) = api_error(
            raw.create(
                &pp,
                &obj(
                    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                            "metadata": {"name": "bad"}, "value": value}),
                ),
            )
            .await,
        );
        assert_eq!(
            (code, reason.as_str()),
            (400, "BadRequest"),
            "{value}: {msg}"
        );
    }
    // An unknown field under strict validation.
    let strict = axum::http::Request::post(
        "/apis/scheduling.k8s.io/v1/priorityclasses?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(
        serde_json::to_vec(
            &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                   "metadata": {"name": "bad"}, "value": 1, "valu": 2}),
        )
        .unwrap(),
    )
    .unwrap();
    let (code, _, msg) = api_error(client.request::<PriorityClass>(strict).await);
    assert_eq!(code, 400);
    assert!(msg.contains("unknown field \"valu\""), "{msg}");
    // A name that is not a DNS subdomain, a namespace on a cluster-scoped kind.
    let (code, _, msg) = api_error(
        raw.create(
            &pp,
            &obj(
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                        "metadata": {"name": "Not_Valid"}, "value": 1}),
            ),
        )
        .await,
    );
    assert_eq!(code, 422, "{msg}");
    let pcs: Api<PriorityClass> = Api::all(client.clone());
    assert_eq!(
        pcs.list(&ListParams::default()).await.unwrap().items.len(),
        2,
        "nothing but the built-in classes was stored"
    );

    // Pods and templates: bad class names and preemption policies are invalid.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (code, _, msg) = api_error(
        pods.create(&pp, &pod("p", json!({"preemptionPolicy": "Always"})))
            .await,
    );
    // Admission computes PreemptLowerPriority first and refuses the difference, as upstream.
    assert_eq!(code, 403, "{msg}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment = |class: &str, policy: &str| -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}],
                             "priorityClassName": class, "preemptionPolicy": policy},
                },
            },
        }))
        .unwrap()
    };
    let (code, _, msg) = api_error(
        deployments
            .create(&pp, &deployment("Bad_Class", "Never"))
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("spec.template.spec.priorityClassName"),
        "{msg}"
    );
    let (code, _, msg) = api_error(
        deployments
            .create(&pp, &deployment("fine", "Sometimes"))
            .await,
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("spec.template.spec.preemptionPolicy: Unsupported value: \"Sometimes\""),
        "{msg}"
    );
    deployments
        .create(&pp, &deployment("fine", "Never"))
        .await
        .unwrap();
}

fn header_columns(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_priority_classes() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || {
        // Discovery and the schema.
        let out = s.kubectl_ok(&["api-resources", "--api-group=scheduling.k8s.io"]);
        let line = out
            .lines()
            .find(|l| l.starts_with("priorityclasses "))
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            [
                "priorityclasses",
                "pc",
                "scheduling.k8s.io/v1",
                "false",
                "PriorityClass"
            ]
        );
        let out = s.kubectl_ok(&["explain", "priorityclass"]);
        assert!(
            out.contains("KIND:       PriorityClass")
                && out.contains("GROUP:      scheduling.k8s.io")
                && out.contains("globalDefault")
                && out.contains("preemptionPolicy"),
            "{out}"
        );
        let out = s.kubectl_ok(&["explain", "pc.value"]);
        assert!(out.contains("FIELD: value <integer>"), "{out}");

        // get pc: kubectl's columns, the built-in classes.
        let out = s.kubectl_ok(&["get", "pc"]);
        assert_eq!(
            header_columns(&out),
            ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
        );
        let node = row(&out, "system-node-critical");
        assert_eq!(node[1..3], ["2000001000", "false"], "{out}");
        assert_eq!(node[4], "PreemptLowerPriority", "{out}");
        assert_eq!(row(&out, "system-cluster-critical")[1], "2000000000");
        let out = s.kubectl_ok(&["describe", "pc", "system-node-critical"]);
        for (field, value) in [
            ("Value:", "2000001000"),
            ("GlobalDefault:", "false"),
            ("PreemptionPolicy:", "PreemptLowerPriority"),
        ] {
            assert!(
                out.lines().any(|l| l.split_whitespace().eq([field, value])),
                "{field} {value} in:\n{out}"
            );
        }

        // apply -f: created, unchanged, configured; an immutable change is refused.
        let manifest = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high-priority\nvalue: 1000000\ndescription: \"For XYZ service pods only.\"\n";
        let path = s.dir.path().join("pc.yaml");
        std::fs::write(&path, manifest).unwrap();
        let file = path.to_str().unwrap();
        let out = s.kubectl_ok(&["apply", "-f", file]);
        assert_eq!(
            out.trim(),
            "priorityclass.scheduling.k8s.io/high-priority created"
        );
        let out = s.kubectl_ok(&["apply", "-f", file]);
        assert_eq!(
            out.trim(),
            "priorityclass.scheduling.k8s.io/high-priority unchanged"
        );
        std::fs::write(&path, manifest.replace("XYZ", "ABC")).unwrap();
        let out = s.kubectl_ok(&["apply", "-f", file]);
        assert_eq!(
            out.trim(),
            "priorityclass.scheduling.k8s.io/high-priority configured"
        );
        let out = s.kubectl_ok(&[
            "get",
            "pc",
            "high-priority",
            "-o",
            "jsonpath={.value} {.description} {.preemptionPolicy}",
        ]);
        assert_eq!(out, "1000000 For ABC service pods only. PreemptLowerPriority");
        std::fs::write(&path, manifest.replace("1000000", "2000000")).unwrap();
        let err = String::from_utf8_lossy(&s.kubectl(&["apply", "-f", file]).stderr).into_owned();
        assert!(err.contains("may not be changed in an update"), "{err}");
        // Server-side apply too.
        std::fs::write(&path, manifest.replace("XYZ", "SSA")).unwrap();
        let out = s.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", file]);
        assert!(out.contains("serverside-applied"), "{out}");

        // create priorityclass.
        let out = s.kubectl_ok(&[
            "create",
            "priorityclass",
            "batch-low",
            "--value=-10",
            "--description=batch work",
            "--preemption-policy=Never",
        ]);
        assert_eq!(out.trim(), "priorityclass.scheduling.k8s.io/batch-low created");
        let out = s.kubectl_ok(&[
            "create",
            "priorityclass",
            "fallback",
            "--value=42",
            "--global-default=true",
        ]);
        assert_eq!(out.trim(), "priorityclass.scheduling.k8s.io/fallback created");
        let err = s.kubectl_err(&[
            "create",
            "priorityclass",
            "fallback2",
            "--value=43",
            "--global-default=true",
        ]);
        assert!(
            err.contains("PriorityClass fallback is already marked as default. Only one default can exist"),
            "{err}"
        );
        let err = s.kubectl_err(&["create", "priorityclass", "huge", "--value=2000000000"]);
        assert!(
            err.contains("maximum allowed value of a user defined priority is 1000000000"),
            "{err}"
        );
        let out = s.kubectl_ok(&["get", "priorityclasses"]);
        let low = row(&out, "batch-low");
        assert_eq!(low[1..3], ["-10", "false"], "{out}");
        assert_eq!(low[4], "Never", "{out}");
        assert_eq!(row(&out, "fallback")[1..3], ["42", "true"], "{out}");

        // Pods get their priority from the class, or from the global default.
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: worker\nspec:\n  priorityClassName: batch-low\n  containers:\n  - name: c\n    image: busybox\n";
        let out = s.kubectl_with(&["create", "-f", "-"], Some(pod), &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = s.kubectl_ok(&[
            "get",
            "pod",
            "worker",
            "-o",
            "jsonpath={.spec.priority} {.spec.preemptionPolicy}",
        ]);
        assert_eq!(out, "-10 Never");
        let out = s.kubectl_ok(&["run", "plain", "--image=busybox"]);
        assert!(out.contains("pod/plain created"), "{out}");
        let out = s.kubectl_ok(&[
            "get",
            "pod",
            "plain",
            "-o",
            "jsonpath={.spec.priorityClassName} {.spec.priority}",
        ]);
        assert_eq!(out, "fallback 42");
        let out = s.kubectl_with(
            &["create", "-f", "-"],
            Some(&pod.replace("worker", "lost").replace("batch-low", "foo")),
            &[],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "pods \"lost\" is forbidden: no PriorityClass with name foo was found"
            ),
            "{err}"
        );

        // The built-in classes stay; user classes go.
        let err = s.kubectl_err(&["delete", "pc", "system-cluster-critical"]);
        assert!(
            err.contains("this is a system priority class and cannot be deleted"),
            "{err}"
        );
        let out = s.kubectl_ok(&["delete", "pc", "batch-low"]);
        assert!(
            out.contains("priorityclass.scheduling.k8s.io \"batch-low\" deleted"),
            "{out}"
        );
        let out = s.kubectl_ok(&["get", "pc", "-o", "name"]);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "priorityclass.scheduling.k8s.io/fallback",
                "priorityclass.scheduling.k8s.io/high-priority",
                "priorityclass.scheduling.k8s.io/system-cluster-critical",
                "priorityclass.scheduling.k8s.io/system-node-critical",
            ]
        );
    })
    .await
    .unwrap();
}
