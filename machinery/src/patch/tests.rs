use serde_json::{Value, json};

use super::*;
use crate::schema::{SchemaRef, Schemas};

fn kind(group: &str, kind: &str) -> SchemaRef<'static> {
    Schemas::builtin().for_kind(group, "v1", kind).unwrap()
}

fn pod() -> Option<SchemaRef<'static>> {
    Some(kind("", "Pod"))
}

fn deployment() -> Option<SchemaRef<'static>> {
    Some(kind("apps", "Deployment"))
}

fn smp(doc: Value, patch: Value) -> Value {
    strategic_merge_patch(&doc, &patch, pod()).unwrap_or_else(|e| panic!("{e}"))
}

fn smp_err(doc: Value, patch: Value) -> PatchError {
    strategic_merge_patch(&doc, &patch, pod()).expect_err("patch should fail")
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect()
}

// ---- JSON patch ----

#[test]
fn json_patch_applies_operations() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1, "list": [1, 2]}});
    let patch = json!([
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "add", "path": "/spec/list/-", "value": 3},
        {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
        {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
        {"op": "test", "path": "/spec/moved", "value": 3},
    ]);
    assert_eq!(
        json_patch(&doc, &patch).unwrap(),
        json!({"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 3, "list": [1, 2, 3], "moved": 3}})
    );
}

#[test]
fn json_patch_failing_move_is_an_error_not_a_panic() {
    // Found by fuzzing: json_patch::patch panicked undoing the replace of a path the failed
    // move had removed.
    let doc = json!({"spec": {"replicas": 1}});
    let patch = json!([
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "move", "from": "/spec/replicas", "path": "/nope/replicas"},
    ]);
    match json_patch(&doc, &patch) {
        Err(PatchError::OperationFailed { index, op, .. }) => {
            assert_eq!((index, op.as_str()), (1, "move"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_patch_errors_name_the_operation() {
    let doc = json!({"spec": {"replicas": 1}});
    let err = json_patch(
        &doc,
        &json!([
            {"op": "replace", "path": "/spec/replicas", "value": 2},
            {"op": "test", "path": "/spec/replicas", "value": 5},
        ]),
    )
    .unwrap_err();
    match &err {
        PatchError::OperationFailed {
            index, op, path, ..
        } => {
            assert_eq!(
                (*index, op.as_str(), path.as_str()),
                (1, "test", "/spec/replicas")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("operation 1 (test /spec/replicas)"),
        "{err}"
    );

    let err = json_patch(&doc, &json!([{"op": "remove", "path": "/spec/missing"}])).unwrap_err();
    assert!(
        matches!(err, PatchError::OperationFailed { index: 0, .. }),
        "{err:?}"
    );

    let err = json_patch(
        &doc,
        &json!([{"op": "add", "path": "/a", "value": 1}, {"op": "frobnicate"}]),
    )
    .unwrap_err();
    assert!(
        matches!(err, PatchError::InvalidOperation { index: 1, .. }),
        "{err:?}"
    );
    let err = json_patch(&doc, &json!([{"op": "add", "value": 1}])).unwrap_err();
    assert!(
        matches!(err, PatchError::InvalidOperation { index: 0, .. }),
        "{err:?}"
    );

    assert!(matches!(
        json_patch(&doc, &json!({"op": "add"})),
        Err(PatchError::InvalidPatch(_))
    ));
    let many = Value::Array(vec![json!({"op": "test", "path": "", "value": 1}); 10_001]);
    assert!(matches!(
        json_patch(&doc, &many),
        Err(PatchError::TooManyOperations(10_001))
    ));
    assert_eq!(json_patch(&doc, &json!([])).unwrap(), doc);
}

// ---- JSON merge patch ----

#[test]
fn merge_patch_follows_rfc_7386() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (doc, patch, expected) in cases {
        assert_eq!(merge_patch(&doc, &patch), expected, "{doc} + {patch}");
    }
}

// ---- strategic merge patch: maps ----

#[test]
fn smp_merges_maps_and_null_deletes() {
    let doc = json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}});
    let out = smp(
        doc,
        json!({"metadata": {"labels": {"b": null, "c": "3", "missing": null}, "annotations": null}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "p", "labels": {"a": "1", "c": "3"}}})
    );
}

#[test]
fn smp_drops_nulls_in_new_values() {
    let out = smp(
        json!({}),
        json!({"metadata": {"labels": {"a": "1", "gone": null}}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": {"a": "1"}}}));
}

#[test]
fn smp_replaces_values_whose_type_changes() {
    let out = smp(
        json!({"spec": {"nodeName": "n1"}}),
        json!({"spec": {"nodeName": {"odd": 1}}}),
    );
    assert_eq!(out, json!({"spec": {"nodeName": {"odd": 1}}}));
    let out = smp(
        json!({"metadata": {"labels": {"a": "1"}}}),
        json!({"metadata": {"labels": "x"}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": "x"}}));
}

#[test]
fn smp_patch_replace_on_a_map() {
    let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
    let out = smp(
        doc,
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": {"c": "3"}}}));
    // At the top level too.
    let out = smp(
        json!({"a": 1, "b": 2}),
        json!({"$patch": "replace", "c": 3}),
    );
    assert_eq!(out, json!({"c": 3}));
}

#[test]
fn smp_patch_delete_on_a_map() {
    let doc = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
    let out = smp(
        doc.clone(),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    );
    assert_eq!(out, json!({"metadata": {"name": "p", "labels": {}}}));
    // Deleting what is not there adds nothing.
    let out = smp(
        doc,
        json!({"metadata": {"annotations": {"$patch": "delete"}}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"name": "p", "labels": {"a": "1"}}})
    );
}

#[test]
fn smp_patch_merge_is_the_default() {
    let doc = json!({"metadata": {"labels": {"a": "1"}}});
    let out = smp(
        doc,
        json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
    );
    assert_eq!(out, json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));
}

// ---- strategic merge patch: lists ----

fn containers_doc() -> Value {
    json!({"spec": {"containers": [
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "b:1"},
    ]}})
}

#[test]
fn smp_merges_containers_by_name() {
    let out = smp(
        containers_doc(),
        json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:2"},
        ]}})
    );
}

#[test]
fn smp_orders_new_items_as_upstream() {
    // Without $setElementOrder, upstream puts patch items not in the document before the
    // document's remaining items.
    let out = smp(
        containers_doc(),
        json!({"spec": {"containers": [{"name": "c", "image": "c"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["c", "a", "b"]);
    // Patch items keep the patch's order relative to each other and to known items.
    let out = smp(
        containers_doc(),
        json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c"}]}}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["a", "b", "c"]);
    // $setElementOrder puts them where kubectl wants them.
    let out = smp(
        containers_doc(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"name": "c", "image": "c"}],
        }}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["a", "b", "c"]);
    assert_eq!(
        out["spec"]["containers"][2],
        json!({"name": "c", "image": "c"})
    );
}

#[test]
fn smp_patch_delete_removes_list_items_by_key() {
    let out = smp(
        containers_doc(),
        json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}, {"name": "zzz", "$patch": "delete"}]}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "b", "image": "b:1"}]}})
    );
    // Every duplicate goes.
    let doc = json!({"metadata": {"ownerReferences": [{"uid": "1"}, {"uid": "1"}, {"uid": "2"}]}});
    let out = smp(
        doc,
        json!({"metadata": {"ownerReferences": [{"uid": "1", "$patch": "delete"}]}}),
    );
    assert_eq!(
        out,
        json!({"metadata": {"ownerReferences": [{"uid": "2"}]}})
    );
}

#[test]
fn smp_patch_replace_on_a_list() {
    let out = smp(
        containers_doc(),
        json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": "z", "gone": null}]}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "z", "image": "z"}]}})
    );
    let out = smp(
        containers_doc(),
        json!({"spec": {"containers": [{"$patch": "replace"}]}}),
    );
    assert_eq!(out, json!({"spec": {"containers": []}}));
}

#[test]
fn smp_replace_marker_in_a_list_item_replaces_the_list() {
    // As upstream: a list item carrying `$patch: replace` is a marker for the whole list, and
    // is itself dropped.
    let out = smp(
        containers_doc(),
        json!({"spec": {"containers": [
            {"name": "a", "$patch": "replace", "image": "a:9"},
            {"name": "n", "image": "n"},
        ]}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "n", "image": "n"}]}})
    );
}

#[test]
fn smp_nested_merge_lists() {
    let doc = json!({"spec": {"containers": [{
        "name": "web",
        "image": "nginx",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }]}});
    let out = smp(
        doc,
        json!({"spec": {"containers": [{
            "name": "web",
            "env": [{"name": "B", "value": "two"}, {"name": "A", "$patch": "delete"}],
            "ports": [{"containerPort": 443, "name": "https"}, {"containerPort": 8080}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}],
        }]}}),
    );
    let web = &out["spec"]["containers"][0];
    assert_eq!(web["env"], json!([{"name": "B", "value": "two"}]));
    assert_eq!(
        web["ports"],
        json!([
            {"containerPort": 80, "protocol": "TCP"},
            {"containerPort": 443, "name": "https"},
            {"containerPort": 8080},
        ])
    );
    assert_eq!(
        web["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
    assert_eq!(web["image"], json!("nginx"));
}

#[test]
fn smp_replaces_lists_without_merge_strategy() {
    let doc = json!({"spec": {
        "tolerations": [{"key": "a", "operator": "Exists"}],
        "containers": [{"name": "c", "args": ["x", "y"], "envFrom": [{"configMapRef": {"name": "a"}}]}],
    }});
    let out = smp(
        doc,
        json!({"spec": {
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "containers": [{"name": "c", "args": ["z"], "envFrom": [{"secretRef": {"name": "s"}}]}],
        }}),
    );
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
    assert_eq!(
        out["spec"]["containers"][0]["envFrom"],
        json!([{"secretRef": {"name": "s"}}])
    );
}

#[test]
fn smp_unions_primitive_merge_lists() {
    let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
    let out = smp(
        doc.clone(),
        json!({"metadata": {"finalizers": ["b", "c", "c"]}}),
    );
    assert_eq!(out, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
    let out = smp(doc, json!({"metadata": {"finalizers": ["c"]}}));
    assert_eq!(out, json!({"metadata": {"finalizers": ["c", "a", "b"]}}));
    // Node podCIDRs merge too.
    let node = Some(kind("", "Node"));
    let out = strategic_merge_patch(
        &json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
        &json!({"spec": {"podCIDRs": ["fd00::/64"]}}),
        node,
    )
    .unwrap();
    assert_eq!(out["spec"]["podCIDRs"].as_array().unwrap().len(), 2);
}

#[test]
fn smp_delete_from_primitive_list() {
    let doc = json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}});
    let out = smp(
        doc.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}}),
    );
    assert_eq!(out, json!({"metadata": {"finalizers": ["a", "c"]}}));
    // Deleting from a list that is not there is a no-op.
    let out = smp(
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
    // Deletions apply after additions, with an order directive.
    let out = smp(
        doc,
        json!({"metadata": {
            "$setElementOrder/finalizers": ["d", "c", "a"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["d"],
        }}),
    );
    assert_eq!(out, json!({"metadata": {"finalizers": ["d", "c", "a"]}}));
}

#[test]
fn smp_set_element_order_on_primitive_lists() {
    let doc = json!({"metadata": {"finalizers": ["1", "2"]}});
    let out = smp(
        doc.clone(),
        json!({"metadata": {"$setElementOrder/finalizers": ["3", "1", "2"], "finalizers": ["3"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["3", "1", "2"]));
    let out = smp(
        doc.clone(),
        json!({"metadata": {"$setElementOrder/finalizers": ["1", "4", "2", "3"], "finalizers": ["4", "3"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["1", "4", "2", "3"]));
    // Reordering only.
    let out = smp(
        doc.clone(),
        json!({"metadata": {"$setElementOrder/finalizers": ["2", "1"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["2", "1"]));
    // Items the order names but the list lacks are ignored.
    let out = smp(
        doc,
        json!({"metadata": {"$setElementOrder/finalizers": ["2", "9", "1"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["2", "1"]));
}

#[test]
fn smp_set_element_order_with_server_only_items() {
    // The live list has items the patch author did not know about.
    let doc = json!({"spec": {"containers": [
        {"name": "1", "other": "a"}, {"name": "2", "image": "2"}, {"name": "7"},
        {"name": "9"}, {"name": "8"}, {"name": "3", "image": "3"}, {"name": "4", "image": "4"},
    ]}});
    let out = smp(
        doc,
        json!({"spec": {"$setElementOrder/containers": [
            {"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"},
        ]}}),
    );
    assert_eq!(
        names(&out["spec"]["containers"]),
        ["2", "1", "7", "9", "8", "4", "3"]
    );
    assert_eq!(
        out["spec"]["containers"][1],
        json!({"name": "1", "other": "a"})
    );
}

#[test]
fn smp_set_element_order_after_deleting_and_adding() {
    // kubectl apply removed "a" and added "c"; "d" was added by someone else. Upstream merges
    // the list in place, which places the server-only "d" before the new "c".
    let doc = json!({"spec": {"containers": [
        {"name": "a"}, {"name": "b", "image": "b"}, {"name": "d", "image": "d"},
    ]}});
    let out = smp(
        doc,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
            "containers": [{"name": "c"}, {"name": "a", "$patch": "delete"}],
        }}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b", "d", "c"]);
    // Without deletions, new items go where the order says, before server-only items.
    let doc = json!({"spec": {"containers": [{"name": "b"}, {"name": "d"}]}});
    let out = smp(
        doc,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
            "containers": [{"name": "c"}],
        }}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b", "c", "d"]);
}

#[test]
fn smp_set_element_order_adds_a_list() {
    let out = smp(
        json!({"spec": {}}),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "b", "image": "b"}, {"name": "a", "image": "a"}],
        }}),
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b", "a"]);
}

#[test]
fn smp_retain_keys_on_volumes() {
    let doc = json!({"spec": {"volumes": [
        {"name": "v", "emptyDir": {}},
        {"name": "w", "hostPath": {"path": "/w"}},
    ]}});
    let out = smp(
        doc,
        json!({"spec": {"volumes": [
            {"name": "v", "configMap": {"name": "cm"}, "$retainKeys": ["configMap", "name"]},
        ]}}),
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "hostPath": {"path": "/w"}}])
    );
}

#[test]
fn smp_retain_keys_on_deployment_strategy() {
    let doc =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let out = strategic_merge_patch(
        &doc,
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        deployment(),
    )
    .unwrap();
    assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    // A null in the patch needs no listing.
    let out = strategic_merge_patch(
        &doc,
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
        deployment(),
    )
    .unwrap();
    assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
}

#[test]
fn smp_without_schema_merges_maps_and_replaces_lists() {
    let doc = json!({"spec": {"containers": [{"name": "a"}], "x": {"y": 1, "z": 2}}});
    let patch = json!({"spec": {"containers": [{"name": "b"}], "x": {"z": null, "w": 3}}});
    let expected = json!({"spec": {"containers": [{"name": "b"}], "x": {"y": 1, "w": 3}}});
    assert_eq!(strategic_merge_patch(&doc, &patch, None).unwrap(), expected);
    // Fields the schema does not know behave the same.
    let doc = json!({"spec": {"unknownList": [1, 2], "unknownMap": {"a": 1}}});
    let out = smp(
        doc,
        json!({"spec": {"unknownList": [3], "unknownMap": {"b": 2}}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"unknownList": [3], "unknownMap": {"a": 1, "b": 2}}})
    );
    // Directives still work without a schema.
    let out = strategic_merge_patch(
        &json!({"a": {"b": 1}}),
        &json!({"a": {"$patch": "replace", "c": 2}}),
        None,
    )
    .unwrap();
    assert_eq!(out, json!({"a": {"c": 2}}));
}

#[test]
fn smp_applies_to_null_documents_and_adds_nested_values_cleanly() {
    let out = smp(
        Value::Null,
        json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}, {"name": "Y"}]}]}}),
    );
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y"}]}]}})
    );
}

#[test]
fn smp_numbers_compare_by_value() {
    let doc = json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}});
    let out = smp(
        doc,
        json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80.0, "name": "http"}]}]}}),
    );
    assert_eq!(
        out["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ---- strategic merge patch: errors ----

#[test]
fn smp_rejects_malformed_directives() {
    let err = smp_err(containers_doc(), json!({"metadata": {"$patch": "bogus"}}));
    assert!(
        matches!(&err, PatchError::BadDirective { path, .. } if path == ".metadata"),
        "{err:?}"
    );
    assert!(err.to_string().contains("bogus"), "{err}");

    let err = smp_err(
        containers_doc(),
        json!({"spec": {"containers": [{"name": "a", "$patch": "nope"}]}}),
    );
    assert!(
        matches!(&err, PatchError::BadDirective { path, .. } if path == ".spec.containers[0]"),
        "{err:?}"
    );

    let err = smp_err(
        containers_doc(),
        json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
    );
    assert!(matches!(err, PatchError::BadDirective { .. }), "{err:?}");

    let err = smp_err(containers_doc(), json!({"spec": {"$setElementOrder": [1]}}));
    assert!(
        err.to_string().contains("$setElementOrder/<field>"),
        "{err}"
    );

    let err = smp_err(
        containers_doc(),
        json!({"spec": {"$deleteFromPrimitiveListcontainers": [1]}}),
    );
    assert!(matches!(err, PatchError::BadDirective { .. }), "{err:?}");

    let err = smp_err(
        containers_doc(),
        json!({"spec": {"$deleteFromPrimitiveList/containers": [{"name": "a"}]}}),
    );
    assert!(matches!(err, PatchError::BadDirective { .. }), "{err:?}");

    let err = smp_err(json!({}), json!({"spec": {"$retainKeys": "type"}}));
    assert!(matches!(err, PatchError::BadDirective { .. }), "{err:?}");

    let err = smp_err(json!({}), json!({"spec": {"$retainKeys": ["a"], "b": 1}}));
    assert!(err.to_string().contains("\"b\""), "{err}");
}

#[test]
fn smp_rejects_items_without_merge_key() {
    let err = smp_err(
        containers_doc(),
        json!({"spec": {"containers": [{"name": "a"}, {"image": "x"}]}}),
    );
    match &err {
        PatchError::MissingMergeKey { path, key, .. } => {
            assert_eq!(
                (path.as_str(), key.as_str()),
                (".spec.containers[1]", "name")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("merge key \"name\""), "{err}");
    let err = smp_err(
        containers_doc(),
        json!({"spec": {"containers": [{"$patch": "delete"}]}}),
    );
    assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err:?}");
    let err = smp_err(
        containers_doc(),
        json!({"spec": {"$setElementOrder/containers": [{"image": "a"}], "containers": [{"name": "a"}]}}),
    );
    assert!(
        matches!(
            err,
            PatchError::MissingMergeKey { .. } | PatchError::BadDirective { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn smp_rejects_mismatched_shapes() {
    assert!(matches!(
        smp_err(json!({}), json!([1])),
        PatchError::InvalidPatch(_)
    ));
    assert!(matches!(
        strategic_merge_patch(&json!([1]), &json!({}), pod()),
        Err(PatchError::Mismatch { .. })
    ));
    // A list mixing objects and strings.
    let err = smp_err(containers_doc(), json!({"spec": {"containers": ["x"]}}));
    assert!(matches!(err, PatchError::Mismatch { .. }), "{err:?}");
    // Order that contradicts the patch list.
    let err = smp_err(
        containers_doc(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "y"}],
        }}),
    );
    assert!(matches!(err, PatchError::BadDirective { .. }), "{err:?}");
    // An order directive for something that is not a list.
    let err = smp_err(
        json!({"spec": {"containers": "x"}}),
        json!({"spec": {"$setElementOrder/containers": []}}),
    );
    assert!(matches!(err, PatchError::Mismatch { .. }), "{err:?}");
}

// ---- kubectl apply / edit flows ----

fn deployment_config(image: &str, env: Value, ports: Value, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "web", "image": image, "env": env, "ports": ports},
                    {"name": "sidecar", "image": "busybox"},
                ]},
            },
        },
    })
}

/// The live object: the configuration plus what the server and others added.
fn live(config: &Value) -> Value {
    let mut live = config.clone();
    live["metadata"]["uid"] = json!("1234");
    live["metadata"]["resourceVersion"] = json!("7");
    live["metadata"]["labels"]["added-by-someone"] = json!("x");
    live["status"] = json!({"replicas": 2});
    for container in live["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
    {
        container["terminationMessagePath"] = json!("/dev/termination-log");
        container["imagePullPolicy"] = json!("IfNotPresent");
    }
    live["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
    live
}

fn apply(original: Option<&Value>, modified: &Value, current: &Value) -> (Value, Value) {
    let patch = create_three_way_merge_patch(original, modified, current, deployment())
        .unwrap_or_else(|e| panic!("{e}"));
    let result =
        strategic_merge_patch(current, &patch, deployment()).unwrap_or_else(|e| panic!("{e}"));
    (patch, result)
}

#[test]
fn apply_removing_a_container_env_var_port_and_label() {
    let old = deployment_config(
        "nginx:1",
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        json!([{"containerPort": 80}, {"containerPort": 443}]),
        json!({"app": "web", "tier": "front"}),
    );
    let current = live(&old);
    let mut new = deployment_config(
        "nginx:2",
        json!([{"name": "A", "value": "1"}]),
        json!([{"containerPort": 80}]),
        json!({"app": "web"}),
    );
    new["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["name"] != json!("sidecar"));

    let (patch, result) = apply(Some(&old), &new, &current);
    // The patch has kubectl's shape.
    assert_eq!(patch["metadata"]["labels"], json!({"tier": null}));
    let pod_spec = &patch["spec"]["template"]["spec"];
    assert_eq!(
        pod_spec["$setElementOrder/containers"],
        json!([{"name": "web"}])
    );
    let containers = pod_spec["containers"].as_array().unwrap();
    assert!(
        containers.contains(&json!({"name": "sidecar", "$patch": "delete"})),
        "{patch}"
    );
    let web = containers
        .iter()
        .find(|c| c["name"] == json!("web"))
        .unwrap();
    assert_eq!(web["image"], json!("nginx:2"));
    assert_eq!(web["$setElementOrder/env"], json!([{"name": "A"}]));
    assert_eq!(web["env"], json!([{"name": "B", "$patch": "delete"}]));
    assert_eq!(
        web["$setElementOrder/ports"],
        json!([{"containerPort": 80}])
    );
    assert_eq!(
        web["ports"],
        json!([{"containerPort": 443, "$patch": "delete"}])
    );

    // Applying it gives the new configuration plus what others set.
    let mut expected = live(&new);
    expected["metadata"]["uid"] = json!("1234");
    assert_eq!(result, expected);
}

#[test]
fn apply_adding_and_reordering_items() {
    let old = deployment_config(
        "nginx",
        json!([{"name": "A", "value": "1"}]),
        json!([{"containerPort": 80}]),
        json!({"app": "web"}),
    );
    let current = live(&old);
    let new = deployment_config(
        "nginx",
        json!([{"name": "Z", "value": "26"}, {"name": "A", "value": "1"}, {"name": "M", "value": "13"}]),
        json!([{"containerPort": 8080}, {"containerPort": 80}]),
        json!({"app": "web", "new": "label"}),
    );
    let (patch, result) = apply(Some(&old), &new, &current);
    let web = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        web["$setElementOrder/env"],
        json!([{"name": "Z"}, {"name": "A"}, {"name": "M"}])
    );
    assert_eq!(result, live(&new));
    assert_eq!(
        names(&result["spec"]["template"]["spec"]["containers"][0]["env"]),
        ["Z", "A", "M"]
    );
}

#[test]
fn apply_without_last_applied_deletes_nothing() {
    let old = deployment_config(
        "nginx",
        json!([{"name": "A"}]),
        json!([]),
        json!({"app": "web", "x": "y"}),
    );
    let current = live(&old);
    let new = deployment_config("nginx:2", json!([]), json!([]), json!({"app": "web"}));
    let (patch, result) = apply(None, &new, &current);
    assert!(!patch.to_string().contains("$patch"), "{patch}");
    assert!(!patch.to_string().contains("null"), "{patch}");
    assert_eq!(result["metadata"]["labels"]["x"], json!("y"));
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("nginx:2")
    );
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A"}])
    );
}

#[test]
fn apply_with_no_change_is_an_empty_patch() {
    let config = deployment_config(
        "nginx",
        json!([{"name": "A"}]),
        json!([{"containerPort": 80}]),
        json!({"app": "web"}),
    );
    let (patch, result) = apply(Some(&config), &config, &live(&config));
    assert_eq!(patch, json!({}));
    assert_eq!(result, live(&config));
}

#[test]
fn apply_switching_a_volume_source_and_the_strategy() {
    let old = json!({"spec": {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
        "template": {"spec": {
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "keep", "emptyDir": {}}],
        }},
    }});
    let current = old.clone();
    let new = json!({"spec": {
        "strategy": {"type": "Recreate"},
        "template": {"spec": {
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "v", "configMap": {"name": "cm"}}, {"name": "keep", "emptyDir": {}}],
        }},
    }});
    let (patch, result) = apply(Some(&old), &new, &current);
    assert_eq!(patch["spec"]["strategy"]["$retainKeys"], json!(["type"]));
    let volume = &patch["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["$retainKeys"], json!(["configMap", "name"]));
    assert_eq!(result, new);
}

#[test]
fn apply_removing_finalizers_uses_a_parallel_list() {
    let old = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}});
    let current = json!({"metadata": {"name": "x", "finalizers": ["a", "b", "server"]}});
    let new = json!({"metadata": {"name": "x", "finalizers": ["a"]}});
    let patch = create_three_way_merge_patch(Some(&old), &new, &current, pod()).unwrap();
    assert_eq!(
        patch["metadata"]["$deleteFromPrimitiveList/finalizers"],
        json!(["b"])
    );
    assert_eq!(
        patch["metadata"]["$setElementOrder/finalizers"],
        json!(["a"])
    );
    let result = strategic_merge_patch(&current, &patch, pod()).unwrap();
    assert_eq!(
        result,
        json!({"metadata": {"name": "x", "finalizers": ["a", "server"]}})
    );
}

#[test]
fn apply_changing_a_list_without_merge_strategy_replaces_it() {
    let old = json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["1"]}]}});
    let new = json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["2", "3"]}]}});
    let patch = create_three_way_merge_patch(Some(&old), &new, &old, pod()).unwrap();
    assert_eq!(patch["spec"]["tolerations"], json!([{"key": "b"}]));
    assert_eq!(strategic_merge_patch(&old, &patch, pod()).unwrap(), new);
}

#[test]
fn kubectl_shaped_patches_apply() {
    // What kubectl apply sends after a label, a container and an env var were removed.
    let current = json!({
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {"containers": [
            {"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "busybox"},
        ]},
    });
    let patch = json!({
        "metadata": {"labels": {"tier": null}},
        "spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [
                {"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}], "name": "web"},
                {"$patch": "delete", "name": "sidecar"},
            ],
        },
    });
    assert_eq!(
        smp(current, patch),
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}]}]},
        })
    );
}

#[test]
fn two_way_patches_round_trip() {
    let original = json!({
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
        "spec": {
            "containers": [
                {"name": "a", "image": "a", "ports": [{"containerPort": 80}, {"containerPort": 81}]},
                {"name": "b", "image": "b"},
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "tolerations": [{"key": "k"}],
        },
    });
    let modified = json!({
        "metadata": {"name": "p", "labels": {"a": "1", "c": "3"}, "finalizers": ["y", "z"]},
        "spec": {
            "containers": [
                {"name": "c", "image": "c"},
                {"name": "a", "image": "a2", "ports": [{"containerPort": 81}, {"containerPort": 90}]},
            ],
            "volumes": [{"name": "v", "secret": {"secretName": "s"}}],
        },
    });
    let patch = create_two_way_merge_patch(&original, &modified, pod()).unwrap();
    assert_eq!(patch["spec"]["tolerations"], Value::Null);
    assert!(
        patch["spec"]
            .as_object()
            .unwrap()
            .contains_key("tolerations")
    );
    assert_eq!(
        strategic_merge_patch(&original, &patch, pod()).unwrap(),
        modified
    );
    // And back.
    let patch = create_two_way_merge_patch(&modified, &original, pod()).unwrap();
    assert_eq!(
        strategic_merge_patch(&modified, &patch, pod()).unwrap(),
        original
    );
    // Without a schema: a merge-patch-like diff.
    let patch = create_two_way_merge_patch(&original, &modified, None).unwrap();
    assert_eq!(
        strategic_merge_patch(&original, &patch, None).unwrap(),
        modified
    );
}

#[test]
fn diff_rejects_non_objects() {
    assert!(create_two_way_merge_patch(&json!([1]), &json!({}), None).is_err());
    assert!(create_three_way_merge_patch(None, &json!("x"), &json!({}), None).is_err());
    let err = create_two_way_merge_patch(
        &json!({"spec": {"containers": [{"image": "x"}]}}),
        &json!({"spec": {"containers": [{"name": "a"}]}}),
        pod(),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err:?}");
}

// ---- dispatch ----

#[test]
fn patch_types_by_content_type() {
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Some(PatchType::Json)
    );
    assert_eq!(
        PatchType::from_content_type("application/merge-patch+json"),
        Some(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/apply-patch+yaml"),
        Some(PatchType::Apply)
    );
    assert_eq!(PatchType::from_content_type("application/json"), None);
    for t in [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ] {
        assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
    }
    let doc = json!({"metadata": {"finalizers": ["a"]}});
    let patch = json!({"metadata": {"finalizers": ["b"]}});
    assert_eq!(
        apply_patch(PatchType::Merge, &doc, &patch, pod()).unwrap(),
        json!({"metadata": {"finalizers": ["b"]}})
    );
    assert_eq!(
        apply_patch(PatchType::StrategicMerge, &doc, &patch, pod()).unwrap(),
        json!({"metadata": {"finalizers": ["b", "a"]}})
    );
    assert!(matches!(
        apply_patch(PatchType::Merge, &doc, &json!([1]), None),
        Err(PatchError::InvalidPatch(_))
    ));
    assert!(matches!(
        apply_patch(PatchType::Apply, &doc, &patch, None),
        Err(PatchError::Unsupported(_))
    ));
    assert_eq!(
        apply_patch(
            PatchType::Json,
            &doc,
            &json!([{"op": "remove", "path": "/metadata"}]),
            None
        )
        .unwrap(),
        json!({})
    );
}
