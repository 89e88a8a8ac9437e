//! Tests of server-side apply and managed fields tracking.

use serde_json::{Value, json};

use super::*;
use crate::schema::Schemas;

const T1: &str = "2025-01-01T00:00:01Z";
const T2: &str = "2025-01-01T00:00:02Z";
const T3: &str = "2025-01-01T00:00:03Z";
const T4: &str = "2025-01-01T00:00:04Z";

fn deployment_schema() -> Option<SchemaRef<'static>> {
    Schemas::builtin().for_kind("apps", "v1", "Deployment")
}

fn config_map_schema() -> Option<SchemaRef<'static>> {
    Schemas::builtin().for_kind("", "v1", "ConfigMap")
}

fn manager<'a>(name: &'a str, time: &'a str) -> Manager<'a> {
    Manager {
        name,
        api_version: "apps/v1",
        subresource: None,
        time,
    }
}

fn status_manager<'a>(name: &'a str, time: &'a str) -> Manager<'a> {
    Manager {
        subresource: Some("status"),
        ..manager(name, time)
    }
}

fn apply_dep(live: Option<&Value>, config: Value, name: &str, time: &str) -> Value {
    apply(
        live,
        &config,
        &manager(name, time),
        false,
        deployment_schema(),
    )
    .unwrap_or_else(|e| panic!("apply by {name} failed: {e}"))
}

fn apply_dep_err(live: &Value, config: Value, name: &str) -> ApplyError {
    apply(
        Some(live),
        &config,
        &manager(name, T4),
        false,
        deployment_schema(),
    )
    .expect_err("apply should fail")
}

fn update_dep(old: Option<&Value>, mut new: Value, name: &str, time: &str) -> Value {
    track_update(old, &mut new, &manager(name, time), deployment_schema()).unwrap();
    new
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `(manager, operation, subresource)` of every entry, in order.
fn owners(object: &Value) -> Vec<(String, String, String)> {
    entries(object)
        .iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            (text("manager"), text("operation"), text("subresource"))
        })
        .collect()
}

fn entry(object: &Value, name: &str, operation: &str) -> Option<Value> {
    entries(object)
        .into_iter()
        .find(|e| e["manager"] == json!(name) && e["operation"] == json!(operation))
}

fn fields(object: &Value, name: &str, operation: &str) -> Value {
    entry(object, name, operation)
        .unwrap_or_else(|| panic!("no {operation} entry of {name} in {object:#}"))["fieldsV1"]
        .clone()
}

fn owns(object: &Value, name: &str, operation: &str, path: &[&str]) -> bool {
    let Some(entry) = entry(object, name, operation) else {
        return false;
    };
    let set = FieldSet::from_fields_v1(&entry["fieldsV1"]).unwrap();
    let path: Vec<PathElement> = path
        .iter()
        .map(|p| PathElement::from_fields_key(p).unwrap().unwrap())
        .collect();
    set.has(&path)
}

fn web_deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}}
        }
    })
}

/// A deployment as the API server stores it after a create (server fields and defaults).
fn stored_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "6b1f", "resourceVersion": "7",
            "generation": 1, "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "web"}
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx", "imagePullPolicy": "Always",
                        "resources": {}
                    }],
                    "restartPolicy": "Always",
                    "securityContext": {}
                }
            }
        },
        "status": {}
    })
}

// ---- FieldsV1 encoding ----

#[test]
fn applied_deployment_fields_match_kubernetes() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "kubectl", T1);
    let entries = entries(&object);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0],
        json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
                    }}}
                }
            }
        })
    );
    // The JSON text of the key is Kubernetes' canonical form.
    let text = serde_json::to_string(&entries[0]["fieldsV1"]).unwrap();
    assert!(text.contains(r#""k:{\"name\":\"web\"}""#), "{text}");
}

#[test]
fn created_deployment_fields_match_kubernetes() {
    let object = update_dep(None, stored_deployment(), "kubectl-create", T1);
    assert_eq!(
        owners(&object),
        [("kubectl-create".into(), "Update".into(), "".into())]
    );
    // As recorded by Kubernetes for `kubectl create deployment`: struct-valued fields that
    // exist in the zero object (spec, strategy, template, …) carry no ".", pointers and maps
    // that the create adds do; empty objects and atomic maps are leaves; status is not owned.
    assert_eq!(
        fields(&object, "kubectl-create", "Update"),
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {
                    "f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                    "f:type": {}
                },
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                            "f:resources": {}
                        }},
                        "f:restartPolicy": {},
                        "f:securityContext": {}
                    }
                }
            }
        })
    );
    let entry = &entries(&object)[0];
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], T1);
    assert!(entry.get("subresource").is_none());
}

#[test]
fn ports_are_keyed_by_port_and_protocol_with_the_tcp_default() {
    let mut config = web_deployment(1, "nginx");
    config["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([
        {"containerPort": 80},
        {"containerPort": 53, "protocol": "UDP"}
    ]);
    config["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "MODE", "value": "prod"}]);
    let object = apply_dep(None, config, "kubectl", T1);
    let container = &fields(&object, "kubectl", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"web\"}"];
    assert_eq!(
        container["f:ports"],
        json!({
            "k:{\"containerPort\":53,\"protocol\":\"UDP\"}":
                {".": {}, "f:containerPort": {}, "f:protocol": {}},
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
        })
    );
    assert_eq!(
        container["f:env"],
        json!({"k:{\"name\":\"MODE\"}": {".": {}, "f:name": {}, "f:value": {}}})
    );
}

#[test]
fn fields_without_a_schema_are_deduced() {
    let config = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1, "tags": ["a"], "nested": {"x": true}}
    });
    let m = Manager {
        api_version: "example.com/v1",
        ..manager("tool", T1)
    };
    let object = apply(None, &config, &m, false, None).unwrap();
    assert_eq!(
        fields(&object, "tool", "Apply"),
        json!({"f:spec": {
            ".": {}, "f:nested": {".": {}, "f:x": {}}, "f:size": {}, "f:tags": {}
        }})
    );
}

// ---- updates ----

#[test]
fn update_by_another_manager_moves_ownership() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let mut changed = created.clone();
    changed["spec"]["replicas"] = json!(3);
    let updated = update_dep(Some(&created), changed, "scaler", T2);

    assert!(owns(
        &updated,
        "scaler",
        "Update",
        &["f:spec", "f:replicas"]
    ));
    assert!(!owns(
        &updated,
        "creator",
        "Update",
        &["f:spec", "f:replicas"]
    ));
    assert!(owns(
        &updated,
        "creator",
        "Update",
        &["f:metadata", "f:labels", "f:app"]
    ));
    assert_eq!(
        fields(&updated, "scaler", "Update"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(entry(&updated, "scaler", "Update").unwrap()["time"], T2);
    assert_eq!(entry(&updated, "creator", "Update").unwrap()["time"], T1);
}

#[test]
fn removed_fields_leave_every_set() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let mut changed = created.clone();
    changed["metadata"]["labels"] = json!({"tier": "front"});
    let updated = update_dep(Some(&created), changed, "editor", T2);
    assert!(!owns(
        &updated,
        "creator",
        "Update",
        &["f:metadata", "f:labels", "f:app"]
    ));
    assert!(owns(
        &updated,
        "editor",
        "Update",
        &["f:metadata", "f:labels", "f:tier"]
    ));
}

#[test]
fn unchanged_update_records_nothing() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let updated = update_dep(Some(&created), created.clone(), "someone", T2);
    assert_eq!(entries(&updated), entries(&created));
}

#[test]
fn same_manager_updates_accumulate() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let mut changed = created.clone();
    changed["spec"]["paused"] = json!(true);
    let updated = update_dep(Some(&created), changed, "creator", T2);
    assert_eq!(owners(&updated).len(), 1);
    assert!(owns(&updated, "creator", "Update", &["f:spec", "f:paused"]));
    assert!(owns(
        &updated,
        "creator",
        "Update",
        &["f:spec", "f:replicas"]
    ));
    assert_eq!(entries(&updated)[0]["time"], T2);
}

#[test]
fn empty_sets_are_dropped() {
    let mut config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}, "data": {"a": "1"}
    });
    let m = |name| Manager {
        api_version: "v1",
        ..manager(name, T1)
    };
    track_update(None, &mut config_map, &m("first"), config_map_schema()).unwrap();
    assert_eq!(
        fields(&config_map, "first", "Update"),
        json!({"f:data": {".": {}, "f:a": {}}})
    );
    let mut labelled = config_map.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    track_update(
        Some(&config_map),
        &mut labelled,
        &m("second"),
        config_map_schema(),
    )
    .unwrap();
    // Removing everything "first" owns drops its entry; "third" took nothing, so has none.
    let mut emptied = labelled.clone();
    emptied.as_object_mut().unwrap().remove("data");
    track_update(
        Some(&labelled),
        &mut emptied,
        &m("third"),
        config_map_schema(),
    )
    .unwrap();
    assert_eq!(
        owners(&emptied),
        [("second".into(), "Update".into(), "".into())]
    );

    // A write that only touches server fields records nothing.
    let mut bumped = emptied.clone();
    bumped["metadata"]["resourceVersion"] = json!("99");
    track_update(
        Some(&emptied),
        &mut bumped,
        &m("fourth"),
        config_map_schema(),
    )
    .unwrap();
    assert_eq!(owners(&bumped), owners(&emptied));

    // An applier whose only field is taken by force loses its entry.
    let object = apply_dep(
        None,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1}
        }),
        "small",
        T1,
    );
    let object = apply(
        Some(&object),
        &web_deployment(2, "nginx"),
        &manager("big", T2),
        true,
        deployment_schema(),
    )
    .unwrap();
    assert_eq!(owners(&object), [("big".into(), "Apply".into(), "".into())]);
}

#[test]
fn update_entries_are_per_api_version() {
    let created = update_dep(None, web_deployment(1, "nginx"), "tool", T1);
    let mut changed = created.clone();
    changed["spec"]["replicas"] = json!(2);
    let m = Manager {
        api_version: "apps/v1beta2",
        ..manager("tool", T2)
    };
    track_update(Some(&created), &mut changed, &m, deployment_schema()).unwrap();
    let versions: Vec<Value> = entries(&changed)
        .iter()
        .map(|e| e["apiVersion"].clone())
        .collect();
    assert_eq!(versions, [json!("apps/v1"), json!("apps/v1beta2")]);
}

#[test]
fn status_subresource_writes_own_only_status() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let mut with_status = created.clone();
    with_status["status"] =
        json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    with_status["spec"]["replicas"] = json!(5);
    let m = status_manager("kube-controller-manager", T2);
    track_update(Some(&created), &mut with_status, &m, deployment_schema()).unwrap();
    let entry = entry(&with_status, "kube-controller-manager", "Update").unwrap();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {
            ".": {},
            "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
            "f:replicas": {}
        }})
    );
    // The spec change is not the status writer's, and the creator keeps replicas.
    assert!(owns(
        &with_status,
        "creator",
        "Update",
        &["f:spec", "f:replicas"]
    ));

    // Main-resource writes never own status.
    let mut main = with_status.clone();
    main["status"]["replicas"] = json!(2);
    main["spec"]["paused"] = json!(true);
    let updated = update_dep(Some(&with_status), main, "editor", T3);
    assert_eq!(
        fields(&updated, "editor", "Update"),
        json!({"f:spec": {"f:paused": {}}})
    );
    assert!(owns(
        &updated,
        "kube-controller-manager",
        "Update",
        &["f:status", "f:replicas"]
    ));
}

#[test]
fn status_subresource_ignores_sent_managed_fields() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let mut new = created.clone();
    new["metadata"]["managedFields"] = json!([]);
    new["status"] = json!({"replicas": 1});
    let m = status_manager("kcm", T2);
    track_update(Some(&created), &mut new, &m, deployment_schema()).unwrap();
    assert_eq!(owners(&new).len(), 2);
}

#[test]
fn sent_managed_fields_replace_the_recorded_ones_when_valid() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let mut new = created.clone();
    new["metadata"]["managedFields"] = json!([{
        "manager": "imported", "operation": "Update", "apiVersion": "apps/v1",
        "time": "2024-06-01T10:00:00+02:00", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}}
    }]);
    let updated = update_dep(Some(&created), new, "writer", T2);
    assert_eq!(
        owners(&updated),
        [("imported".into(), "Update".into(), "".into())]
    );
    assert_eq!(entries(&updated)[0]["time"], "2024-06-01T08:00:00Z");

    // An invalid list is ignored: the recorded entries stay.
    let mut invalid = created.clone();
    invalid["metadata"]["managedFields"] =
        json!([{"manager": "x", "operation": "Patch", "apiVersion": "apps/v1"}]);
    let updated = update_dep(Some(&created), invalid, "writer", T2);
    assert_eq!(entries(&updated), entries(&created));
}

#[test]
fn empty_managed_fields_reset_tracking_until_the_next_apply() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    for reset in [json!([]), json!([{}])] {
        let mut new = created.clone();
        new["metadata"]["managedFields"] = reset;
        let cleared = update_dep(Some(&created), new, "writer", T2);
        assert!(
            cleared["metadata"].get("managedFields").is_none(),
            "{cleared:#}"
        );

        // Untracked objects stay untracked on updates…
        let mut changed = cleared.clone();
        changed["spec"]["replicas"] = json!(4);
        let updated = update_dep(Some(&cleared), changed, "writer", T3);
        assert!(updated["metadata"].get("managedFields").is_none());

        // …and the next apply attributes the existing fields to `before-first-apply`.
        let applied = apply(
            Some(&updated),
            &web_deployment(5, "nginx"),
            &manager("kubectl", T4),
            true,
            deployment_schema(),
        )
        .unwrap();
        assert_eq!(
            owners(&applied),
            [
                ("kubectl".into(), "Apply".into(), "".into()),
                ("before-first-apply".into(), "Update".into(), "".into())
            ]
        );
        assert!(!owns(
            &applied,
            "before-first-apply",
            "Update",
            &["f:spec", "f:replicas"]
        ));
    }
}

#[test]
fn update_managers_are_capped() {
    let mut object = update_dep(
        None,
        web_deployment(1, "nginx"),
        "m00",
        "2025-01-01T00:00:00Z",
    );
    for i in 1..=11 {
        let mut changed = object.clone();
        changed["metadata"]["annotations"][format!("k{i}")] = json!("v");
        let time = format!("2025-01-01T00:00:{i:02}Z");
        object = update_dep(Some(&object), changed, &format!("m{i:02}"), &time);
    }
    let names: Vec<String> = owners(&object).into_iter().map(|o| o.0).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.contains(&"ancient-changes".to_owned()), "{names:?}");
    assert!(!names.contains(&"m00".to_owned()));
    assert!(names.contains(&"m11".to_owned()));
}

#[test]
fn track_update_rejects_non_objects() {
    let mut new = json!([1]);
    let err = track_update(None, &mut new, &manager("x", T1), None).unwrap_err();
    assert!(matches!(err, ApplyError::Invalid { .. }));
}

// ---- apply ----

#[test]
fn apply_creates_a_missing_object() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "tool", T1);
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(object["metadata"]["name"], "web");
    assert_eq!(
        owners(&object),
        [("tool".into(), "Apply".into(), "".into())]
    );
}

#[test]
fn applying_twice_without_a_field_deletes_it() {
    let mut first = web_deployment(2, "nginx");
    first["metadata"]["labels"]["tier"] = json!("front");
    first["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["-v"]);
    let object = apply_dep(None, first, "tool", T1);
    assert_eq!(object["metadata"]["labels"]["tier"], "front");

    let mut second = web_deployment(2, "nginx");
    second["spec"].as_object_mut().unwrap().remove("replicas");
    let object = apply_dep(Some(&object), second, "tool", T2);
    assert_eq!(object["metadata"]["labels"], json!({"app": "web"}));
    assert!(object["spec"].get("replicas").is_none(), "{object:#}");
    assert!(
        object["spec"]["template"]["spec"]["containers"][0]
            .get("args")
            .is_none()
    );
    assert_eq!(
        fields(&object, "tool", "Apply"),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}
        })
    );
}

#[test]
fn applying_without_a_container_deletes_it() {
    let mut first = web_deployment(1, "nginx");
    first["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "envoy"}));
    let object = apply_dep(None, first, "tool", T1);
    let object = apply_dep(Some(&object), web_deployment(1, "nginx"), "tool", T2);
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx"}])
    );
}

#[test]
fn applying_without_the_last_key_of_a_map_removes_the_map() {
    let config = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let m = Manager {
        api_version: "v1",
        ..manager("tool", T1)
    };
    let object = apply(
        None,
        &config(json!({"a": "1"})),
        &m,
        false,
        config_map_schema(),
    )
    .unwrap();
    let mut second = config(json!({}));
    second.as_object_mut().unwrap().remove("data");
    let object = apply(Some(&object), &second, &m, false, config_map_schema()).unwrap();
    assert!(object.get("data").is_none(), "{object:#}");
    assert!(object["metadata"].get("managedFields").is_none());
}

#[test]
fn dropped_fields_owned_by_others_stay() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "first", T1);
    // A second applier shares replicas; an updater owns an annotation.
    let object = apply_dep(Some(&object), web_deployment(2, "nginx"), "second", T2);
    let mut annotated = object.clone();
    annotated["metadata"]["annotations"] = json!({"note": "x"});
    let object = update_dep(Some(&object), annotated, "editor", T2);

    let mut reduced = web_deployment(2, "nginx");
    reduced["spec"].as_object_mut().unwrap().remove("replicas");
    let object = apply_dep(Some(&object), reduced, "first", T3);
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(object["metadata"]["annotations"]["note"], "x");
    assert!(!owns(&object, "first", "Apply", &["f:spec", "f:replicas"]));
    assert!(owns(&object, "second", "Apply", &["f:spec", "f:replicas"]));
}

#[test]
fn equal_values_are_shared() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "first", T1);
    let object = apply_dep(Some(&object), web_deployment(2, "nginx"), "second", T2);
    for name in ["first", "second"] {
        assert!(
            owns(&object, name, "Apply", &["f:spec", "f:replicas"]),
            "{name}"
        );
    }
    // Nothing changed: the new entry has no time, as in Kubernetes.
    assert!(
        entry(&object, "second", "Apply")
            .unwrap()
            .get("time")
            .is_none()
    );
    assert_eq!(entry(&object, "first", "Apply").unwrap()["time"], T1);
}

#[test]
fn different_values_conflict() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "first", T1);
    let err = apply_dep_err(&object, web_deployment(3, "nginx"), "second");
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        conflicts,
        &[Conflict {
            manager: "first".into(),
            operation: Operation::Apply,
            api_version: "apps/v1".into(),
            subresource: None,
            path: ".spec.replicas".into(),
        }]
    );
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "first": .spec.replicas"#
    );
    assert_eq!(conflicts[0].message(), r#"conflict with "first""#);
}

#[test]
fn forcing_moves_ownership() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "first", T1);
    let object = apply(
        Some(&object),
        &web_deployment(3, "nginx:2"),
        &manager("second", T2),
        true,
        deployment_schema(),
    )
    .unwrap();
    assert_eq!(object["spec"]["replicas"], 3);
    assert!(owns(&object, "second", "Apply", &["f:spec", "f:replicas"]));
    assert!(!owns(&object, "first", "Apply", &["f:spec", "f:replicas"]));
    let image = [
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"web\"}",
        "f:image",
    ];
    assert!(!owns(&object, "first", "Apply", &image));
    assert!(owns(&object, "second", "Apply", &image));
    // The first applier still shares the rest.
    assert!(owns(
        &object,
        "first",
        "Apply",
        &["f:metadata", "f:labels", "f:app"]
    ));
}

#[test]
fn conflicts_with_updaters_name_their_version() {
    let created = update_dep(
        None,
        web_deployment(1, "nginx"),
        "kubectl-client-side-apply",
        T1,
    );
    let err = apply_dep_err(&created, web_deployment(3, "nginx:2"), "kubectl");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n\
         - .spec.replicas\n\
         - .spec.template.spec.containers[name=\"web\"].image"
    );
    let ApplyError::Conflicts(conflicts) = err else {
        unreachable!()
    };
    assert_eq!(
        conflicts[1].message(),
        r#"conflict with "kubectl-client-side-apply" using apps/v1"#
    );
}

#[test]
fn conflicts_are_grouped_by_manager() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "b-tool", T1);
    let mut changed = object.clone();
    changed["metadata"]["labels"]["app"] = json!("api");
    let object = update_dep(Some(&object), changed, "a-tool", T2);
    let mut config = web_deployment(5, "nginx");
    config["metadata"]["labels"]["app"] = json!("other");
    let err = apply_dep_err(&object, config, "c-tool");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"a-tool\" using apps/v1:\n\
         - .metadata.labels.app\n\
         conflicts with \"b-tool\":\n\
         - .spec.replicas"
    );
}

#[test]
fn subresource_owners_are_named_in_conflicts() {
    let created = update_dep(None, web_deployment(1, "nginx"), "creator", T1);
    let mut with_status = created.clone();
    with_status["status"] = json!({"replicas": 1});
    track_update(
        Some(&created),
        &mut with_status,
        &status_manager("kcm", T2),
        deployment_schema(),
    )
    .unwrap();
    let config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "status": {"replicas": 7}
    });
    let err = apply(
        Some(&with_status),
        &config,
        &status_manager("other", T3),
        false,
        deployment_schema(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kcm" with subresource "status" using apps/v1: .status.replicas"#
    );
    let applied = apply(
        Some(&with_status),
        &config,
        &status_manager("other", T3),
        true,
        deployment_schema(),
    )
    .unwrap();
    let entry = entry(&applied, "other", "Apply").unwrap();
    assert_eq!(entry["subresource"], "status");
    assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    assert!(!owns(
        &applied,
        "kcm",
        "Update",
        &["f:status", "f:replicas"]
    ));
}

#[test]
fn kubectl_takes_over_its_client_side_apply_fields() {
    let config = web_deployment(1, "nginx");
    let mut created = config.clone();
    let last_applied = serde_json::to_string(&config).unwrap();
    created["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last_applied});
    let created = update_dep(None, created, "kubectl-client-side-apply", T1);

    let object = apply_dep(Some(&created), web_deployment(3, "nginx"), "kubectl", T2);
    assert_eq!(object["spec"]["replicas"], 3);
    assert!(owns(&object, "kubectl", "Apply", &["f:spec", "f:replicas"]));
    assert!(!owns(
        &object,
        "kubectl-client-side-apply",
        "Update",
        &["f:spec", "f:replicas"]
    ));
    // The annotation follows the applied configuration.
    let annotation = object["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(annotation.ends_with('\n'));
    let recorded: Value = serde_json::from_str(annotation).unwrap();
    assert_eq!(recorded, web_deployment(3, "nginx"));

    // Other managers get no such pass.
    let err = apply_dep_err(&created, web_deployment(3, "nginx"), "someone");
    assert!(matches!(err, ApplyError::Conflicts(_)));
}

#[test]
fn kubectl_still_conflicts_outside_its_last_applied_fields() {
    let mut created = web_deployment(1, "nginx");
    let last_applied = serde_json::to_string(&web_deployment(1, "nginx")).unwrap();
    created["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last_applied});
    let created = update_dep(None, created, "kubectl-client-side-apply", T1);
    let mut scaled = created.clone();
    scaled["spec"]["paused"] = json!(true);
    let scaled = update_dep(Some(&created), scaled, "pauser", T2);

    let mut config = web_deployment(3, "nginx");
    config["spec"]["paused"] = json!(false);
    let err = apply_dep_err(&scaled, config, "kubectl");
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "pauser" using apps/v1: .spec.paused"#
    );
}

#[test]
fn kubectl_like_flow_on_a_deployment() {
    // `kubectl apply --server-side` of a deployment with two labels, env and a port.
    let config = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "team": "a"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": "nginx:1",
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80}]
                }]}
            }
        }
    });
    let object = apply_dep(None, config.clone(), "kubectl", T1);

    // A controller adds a label, an env var, a port and a sidecar by update.
    let mut changed = object.clone();
    changed["metadata"]["labels"]["injected"] = json!("yes");
    let containers = &mut changed["spec"]["template"]["spec"]["containers"];
    containers[0]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "B", "value": "2"}));
    containers[0]["ports"]
        .as_array_mut()
        .unwrap()
        .push(json!({"containerPort": 9090, "protocol": "TCP"}));
    containers
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "proxy", "image": "envoy"}));
    let object = update_dep(Some(&object), changed, "injector", T2);
    assert!(owns(
        &object,
        "injector",
        "Update",
        &["f:metadata", "f:labels", "f:injected"]
    ));

    // Re-applying a new image and a changed env value keeps everything the injector added.
    let mut config2 = config.clone();
    let web = &mut config2["spec"]["template"]["spec"]["containers"][0];
    web["image"] = json!("nginx:2");
    web["env"][0]["value"] = json!("10");
    web["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
    let object = apply_dep(Some(&object), config2, "kubectl", T3);

    assert_eq!(
        object["metadata"]["labels"],
        json!({"app": "web", "injected": "yes", "team": "a"})
    );
    let containers = &object["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "A", "value": "10"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(containers[1], json!({"name": "proxy", "image": "envoy"}));
    // The port key did not change with the explicit protocol: still one item, now with the
    // protocol owned too.
    let port = [
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"web\"}",
        "f:ports",
        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}",
        "f:protocol",
    ];
    assert!(owns(&object, "kubectl", "Apply", &port));

    // Dropping the team label from the manifest deletes it; the injected label stays.
    let mut config3 = config.clone();
    config3["metadata"]["labels"] = json!({"app": "web"});
    let object = apply_dep(Some(&object), config3, "kubectl", T4);
    assert_eq!(
        object["metadata"]["labels"],
        json!({"app": "web", "injected": "yes"})
    );
    // The image went back to the first manifest's: kubectl owned it, no conflict.
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    assert_eq!(
        owners(&object),
        [
            ("kubectl".into(), "Apply".into(), "".into()),
            ("injector".into(), "Update".into(), "".into())
        ]
    );
}

#[test]
fn atomic_values_are_replaced_and_owned_whole() {
    let mut first = web_deployment(1, "nginx");
    first["spec"]["selector"] = json!({"matchLabels": {"app": "web", "x": "1"}});
    first["spec"]["template"]["spec"]["containers"][0]["command"] = json!(["a", "b"]);
    first["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    let object = apply_dep(None, first, "tool", T1);
    let mut second = web_deployment(1, "nginx");
    second["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
    second["spec"]["template"]["spec"]["containers"][0]["command"] = json!(["c"]);
    second["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
    let object = apply_dep(Some(&object), second, "tool", T2);
    assert_eq!(
        object["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["c"])
    );
    assert_eq!(
        object["spec"]["template"]["spec"]["nodeSelector"],
        json!({"zone": "a"})
    );
    let spec = &fields(&object, "tool", "Apply")["f:spec"];
    assert_eq!(spec["f:selector"], json!({}));
    assert_eq!(spec["f:template"]["f:spec"]["f:nodeSelector"], json!({}));
}

#[test]
fn sets_merge_by_value() {
    let config = |finalizers: Value| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "finalizers": finalizers}
        })
    };
    let m = |name| Manager {
        api_version: "v1",
        ..manager(name, T1)
    };
    let object = apply(
        None,
        &config(json!(["a/x"])),
        &m("one"),
        false,
        config_map_schema(),
    )
    .unwrap();
    let object = apply(
        Some(&object),
        &config(json!(["b/y"])),
        &m("two"),
        false,
        config_map_schema(),
    )
    .unwrap();
    assert_eq!(object["metadata"]["finalizers"], json!(["a/x", "b/y"]));
    assert_eq!(
        fields(&object, "two", "Apply"),
        json!({"f:metadata": {"f:finalizers": {"v:\"b/y\"": {}}}})
    );
}

#[test]
fn map_lists_keep_live_order_and_follow_the_applied_order() {
    let containers = |names: &[&str]| {
        let items: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "image": "i"}))
            .collect();
        let mut config = web_deployment(1, "i");
        config["spec"]["template"]["spec"]["containers"] = Value::Array(items);
        config
    };
    let live = update_dep(None, containers(&["a", "b", "c"]), "creator", T1);
    let object = apply_dep(Some(&live), containers(&["c", "a", "d"]), "tool", T2);
    let names: Vec<&str> = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c", "a", "d"]);
}

#[test]
fn apply_without_changes_keeps_the_time() {
    let object = apply_dep(None, web_deployment(2, "nginx"), "tool", T1);
    let again = apply_dep(Some(&object), web_deployment(2, "nginx"), "tool", T2);
    assert_eq!(entries(&again), entries(&object));
    let changed = apply_dep(Some(&again), web_deployment(3, "nginx"), "tool", T3);
    assert_eq!(entries(&changed)[0]["time"], T3);
}

#[test]
fn entries_are_ordered_like_kubernetes() {
    let object = update_dep(None, web_deployment(1, "nginx"), "zeta", T1);
    let mut changed = object.clone();
    changed["spec"]["paused"] = json!(true);
    let object = update_dep(Some(&object), changed, "alpha", T2);
    let mut config = web_deployment(1, "nginx");
    config["spec"]["minReadySeconds"] = json!(5);
    let object = apply(
        Some(&object),
        &config,
        &manager("applier", T3),
        true,
        deployment_schema(),
    )
    .unwrap();
    let names: Vec<String> = owners(&object).into_iter().map(|o| o.0).collect();
    assert_eq!(names, ["applier", "zeta", "alpha"]);
}

#[test]
fn invalid_configurations_name_the_path() {
    let m = manager("tool", T1);
    let check = |config: Value, path: &str, message: &str| {
        let err = apply(None, &config, &m, false, deployment_schema()).unwrap_err();
        let ApplyError::Invalid {
            path: p,
            message: msg,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(p, path, "{err}");
        assert!(msg.contains(message), "{msg}");
    };
    check(json!("nope"), "", "must be a JSON object");
    check(
        json!({"kind": "Deployment", "metadata": {"name": "x"}}),
        ".apiVersion",
        "must be set",
    );
    check(
        json!({"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "x"}}),
        ".apiVersion",
        "Specified patch version: apps/v1beta1, expected: apps/v1",
    );
    check(
        json!({"apiVersion": "apps/v1", "metadata": {"name": "x"}}),
        ".kind",
        "must be set",
    );
    check(
        json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
        ".metadata",
        "object",
    );
    check(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}),
        ".metadata.name",
        "required",
    );
    check(
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "x", "managedFields": []}}),
        ".metadata.managedFields",
        "must be nil",
    );
    let mut no_name = web_deployment(1, "nginx");
    no_name["spec"]["template"]["spec"]["containers"] = json!([{"image": "nginx"}]);
    check(
        no_name,
        ".spec.template.spec.containers",
        r#"element 0: associative list with keys has an element that omits key field "name""#,
    );
    let mut duplicate = web_deployment(1, "nginx");
    duplicate["spec"]["template"]["spec"]["containers"] = json!([{"name": "a"}, {"name": "a"}]);
    check(
        duplicate,
        ".spec.template.spec.containers",
        r#"duplicate entries for key [name="a"]"#,
    );
    let mut bad_item = web_deployment(1, "nginx");
    bad_item["spec"]["template"]["spec"]["containers"][0]["env"] = json!(["x"]);
    check(
        bad_item,
        r#".spec.template.spec.containers[name="web"].env"#,
        "non-map elements",
    );
    let err = apply(None, &json!(1), &m, false, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the applied configuration must be a JSON object"
    );
}

#[test]
fn live_objects_with_odd_lists_are_tolerated() {
    // Items without keys or with duplicate keys in a stored object do not break tracking.
    let mut odd = web_deployment(1, "nginx");
    odd["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a"}, {"name": "a", "image": "x"}, {"image": "nokey"}]);
    let created = update_dep(None, odd, "creator", T1);
    let containers =
        &fields(&created, "creator", "Update")["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert_eq!(containers, &json!({"k:{\"name\":\"a\"}": {}}));
    let object = apply_dep(Some(&created), web_deployment(1, "nginx"), "tool", T2);
    let names: Vec<Value> = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("a"), Value::Null, json!("web")]);
}

#[test]
fn default_manager_is_the_user_agent_prefix() {
    assert_eq!(
        default_manager("kubectl/v1.33.1 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
    assert_eq!(
        default_manager("OpenAPI-Generator/33.1.0/python"),
        "OpenAPI-Generator"
    );
    assert_eq!(default_manager("kube-rs"), "kube-rs");
    assert_eq!(default_manager(""), "");
    assert_eq!(default_manager("a\tb\u{7}c/1"), "abc");
    assert_eq!(
        default_manager(&"x".repeat(300)).len(),
        FIELD_MANAGER_MAX_LENGTH
    );
    // An empty manager is recorded as `unknown`.
    let object = apply(
        None,
        &web_deployment(1, "n"),
        &manager("", T1),
        false,
        deployment_schema(),
    )
    .unwrap();
    assert_eq!(owners(&object)[0].0, "unknown");
}

#[test]
fn value_struct_table_names_real_fields() {
    let schemas = Schemas::builtin();
    // Kinds the registry does not have yet are allowed; those it has must match.
    let mut found = 0;
    for (definition, fields) in typed::VALUE_STRUCTS {
        let Some(schema) = schemas.definition(definition) else {
            continue;
        };
        found += 1;
        for field in *fields {
            let kind = schema.field(field).map(|f| f.kind());
            assert_eq!(
                kind,
                Some(crate::schema::SchemaKind::Object),
                "{definition}.{field}"
            );
        }
    }
    assert!(found >= 10, "{found}");
}

#[test]
fn oversized_last_applied_annotations_are_dropped() {
    let mut created = web_deployment(1, "nginx");
    let last_applied = serde_json::to_string(&web_deployment(1, "nginx")).unwrap();
    created["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last_applied});
    let created = update_dep(None, created, "kubectl-client-side-apply", T1);
    let mut config = web_deployment(1, "nginx");
    config["metadata"]["labels"]["big"] = json!("x".repeat(63));
    config["spec"]["template"]["spec"]["containers"][0]["args"] =
        json!(vec!["y".repeat(1024); 300]);
    let object = apply_dep(Some(&created), config, "kubectl", T2);
    assert!(
        object["metadata"]["annotations"]
            .get(LAST_APPLIED_ANNOTATION)
            .is_none()
    );
}
