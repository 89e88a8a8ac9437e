use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::facts::FACTS;
use super::*;

fn schemas() -> &'static Schemas {
    Schemas::builtin()
}

fn pod() -> SchemaRef<'static> {
    schemas().for_kind("", "v1", "Pod").expect("Pod schema")
}

/// Walks a path of field names; `[]` steps into list items, `*` into map values.
fn walk(schema: SchemaRef<'static>, path: &str) -> SchemaRef<'static> {
    let mut cur = schema;
    for step in path.split('.') {
        cur = match step {
            "[]" => cur.items(),
            "*" => cur.map_values(),
            name => cur.field(name),
        }
        .unwrap_or_else(|| panic!("no {step} in {path}"));
    }
    cur
}

const SERVED_KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Namespace"),
    ("", "v1", "Node"),
    ("", "v1", "Pod"),
    ("", "v1", "Binding"),
    ("", "v1", "Service"),
    ("", "v1", "Endpoints"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "Event"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "PersistentVolume"),
    ("", "v1", "PersistentVolumeClaim"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "StatefulSet"),
    ("autoscaling", "v1", "Scale"),
    ("batch", "v1", "Job"),
    ("coordination.k8s.io", "v1", "Lease"),
    ("discovery.k8s.io", "v1", "EndpointSlice"),
    ("events.k8s.io", "v1", "Event"),
    ("policy", "v1", "Eviction"),
    ("", "v1", "Status"),
];

#[test]
fn every_served_kind_and_its_list_has_a_schema_with_its_gvk() {
    for &(group, version, kind) in SERVED_KINDS {
        let schema = schemas()
            .for_kind(group, version, kind)
            .unwrap_or_else(|| panic!("{group}/{version} {kind}"));
        let gvk = schema.extension(EXT_GVK).expect("gvk extension");
        assert!(
            gvk.as_array()
                .unwrap()
                .contains(&json!({"group": group, "version": version, "kind": kind})),
            "{kind}: {gvk}"
        );
        if !["Binding", "Scale", "Eviction", "Status"].contains(&kind) {
            let list_kind = format!("{kind}List");
            let list = schemas()
                .for_kind(group, version, &list_kind)
                .unwrap_or_else(|| panic!("{list_kind}"));
            assert_eq!(list.kind(), SchemaKind::Object);
            let items = list.field("items").unwrap().items().unwrap();
            assert_eq!(items.definition_name(), schema.definition_name());
            assert_eq!(
                list.field("metadata").unwrap().definition_name(),
                Some("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")
            );
        }
    }
}

#[test]
fn definition_names_match_upstream() {
    let defs = schemas().definitions();
    for name in [
        "io.k8s.api.core.v1.Pod",
        "io.k8s.api.core.v1.PodList",
        "io.k8s.api.core.v1.PodSpec",
        "io.k8s.api.apps.v1.Deployment",
        "io.k8s.api.events.v1.Event",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
    ] {
        assert!(defs.contains_key(name), "{name}");
    }
    // The core Event and the events.k8s.io Event are different kinds.
    let core = schemas().for_kind("", "v1", "Event").unwrap();
    let events = schemas().for_kind("events.k8s.io", "v1", "Event").unwrap();
    assert_eq!(core.definition_name(), Some("io.k8s.api.core.v1.Event"));
    assert_eq!(events.definition_name(), Some("io.k8s.api.events.v1.Event"));
}

#[test]
fn every_reference_resolves() {
    fn refs(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        out.insert(v.as_str().unwrap().to_owned());
                    } else {
                        refs(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
            _ => {}
        }
    }
    let mut all = BTreeSet::new();
    for schema in schemas().definitions().values() {
        refs(schema, &mut all);
    }
    assert!(!all.is_empty());
    for reference in all {
        let name = reference
            .strip_prefix(COMPONENTS_PREFIX)
            .unwrap_or_else(|| panic!("{reference}"));
        assert!(schemas().definitions().contains_key(name), "{reference}");
    }
}

#[test]
fn refs_with_siblings_are_wrapped_in_all_of() {
    // OpenAPI 3.0 ignores siblings of $ref, so descriptions sit next to an allOf.
    let spec = pod().declared()["properties"]["spec"].clone();
    assert!(spec.get("$ref").is_none(), "{spec}");
    assert_eq!(
        spec["allOf"][0]["$ref"],
        json!("#/components/schemas/io.k8s.api.core.v1.PodSpec")
    );
    assert!(
        spec["description"]
            .as_str()
            .unwrap()
            .contains("Specification")
    );
}

#[test]
fn navigates_a_pod() {
    let pod = pod();
    assert_eq!(pod.kind(), SchemaKind::Object);
    assert_eq!(pod.definition_name(), Some("io.k8s.api.core.v1.Pod"));
    assert!(pod.required().any(|r| r == "metadata"));
    let spec = pod.field("spec").unwrap();
    assert_eq!(spec.definition_name(), Some("io.k8s.api.core.v1.PodSpec"));
    assert!(
        spec.description()
            .unwrap()
            .contains("Specification of the desired behavior")
    );
    let containers = spec.field("containers").unwrap();
    assert_eq!(containers.kind(), SchemaKind::Array);
    let container = containers.items().unwrap();
    assert_eq!(
        container.definition_name(),
        Some("io.k8s.api.core.v1.Container")
    );
    assert_eq!(container.kind(), SchemaKind::Object);
    assert!(container.field_names().any(|f| f == "imagePullPolicy"));
    assert_eq!(container.field("image").unwrap().kind(), SchemaKind::Scalar);
    assert_eq!(
        container.field("image").unwrap().type_name(),
        Some("string")
    );
    assert!(container.field("imagePullPolicyy").is_none());
    assert!(pod.items().is_none());
    assert!(pod.map_values().is_none());

    let env_name = walk(pod, "spec.containers.[].env.[].name");
    assert_eq!(env_name.kind(), SchemaKind::Scalar);
    // Maps: labels and resource quantities.
    let labels = walk(pod, "metadata.labels");
    assert_eq!(labels.kind(), SchemaKind::Map);
    assert_eq!(labels.map_values().unwrap().kind(), SchemaKind::Scalar);
    assert_eq!(labels.child("app").unwrap().kind(), SchemaKind::Scalar);
    let limit = walk(pod, "spec.containers.[].resources.limits.*");
    assert_eq!(limit.kind(), SchemaKind::Any);
    assert_eq!(
        limit.definition_name(),
        Some("io.k8s.apimachinery.pkg.api.resource.Quantity")
    );
    // Int-or-string and free-form values.
    let port = walk(pod, "spec.containers.[].livenessProbe.httpGet.port");
    assert_eq!(port.kind(), SchemaKind::Any);
    let fields_v1 = walk(pod, "metadata.managedFields.[].fieldsV1");
    assert_eq!(fields_v1.kind(), SchemaKind::Any);
    // child() on an object is field().
    assert!(pod.child("spec").is_some());
    assert!(pod.child("nope").is_none());
}

#[test]
fn pod_patch_extensions() {
    let spec = walk(pod(), "spec");
    for (field, key) in [
        ("containers", "name"),
        ("initContainers", "name"),
        ("ephemeralContainers", "name"),
        ("imagePullSecrets", "name"),
        ("hostAliases", "ip"),
        ("topologySpreadConstraints", "topologyKey"),
        ("resourceClaims", "name"),
        ("schedulingGates", "name"),
        ("volumes", "name"),
    ] {
        let strategy = spec.field(field).unwrap().patch_strategy();
        assert!(strategy.merge, "{field}");
        assert_eq!(strategy.merge_key, Some(key), "{field}");
    }
    let volumes = spec.field("volumes").unwrap().patch_strategy();
    assert!(volumes.retain_keys);
    assert!(
        !spec
            .field("containers")
            .unwrap()
            .patch_strategy()
            .retain_keys
    );
    assert_eq!(
        spec.field("containers").unwrap().list_type(),
        ListType::Map(vec!["name"])
    );
    assert_eq!(
        spec.field("topologySpreadConstraints").unwrap().list_type(),
        ListType::Map(vec!["topologyKey", "whenUnsatisfiable"])
    );
    let tolerations = spec.field("tolerations").unwrap();
    assert_eq!(tolerations.patch_strategy(), PatchStrategy::default());
    assert_eq!(tolerations.list_type(), ListType::Atomic);
    assert_eq!(
        spec.field("nodeSelector").unwrap().map_type(),
        MapType::Atomic
    );

    // The extensions are on the property, where kubectl reads them.
    let raw = &schemas().definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(raw[EXT_PATCH_STRATEGY], json!("merge"));
    assert_eq!(raw[EXT_PATCH_MERGE_KEY], json!("name"));
    assert_eq!(raw[EXT_LIST_TYPE], json!("map"));
    assert_eq!(raw[EXT_LIST_MAP_KEYS], json!(["name"]));
    let volumes = &schemas().definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
    assert_eq!(volumes[EXT_PATCH_STRATEGY], json!("merge,retainKeys"));

    let container = walk(pod(), "spec.containers.[]");
    for (field, key) in [
        ("ports", "containerPort"),
        ("env", "name"),
        ("volumeMounts", "mountPath"),
        ("volumeDevices", "devicePath"),
    ] {
        let strategy = container.field(field).unwrap().patch_strategy();
        assert!(strategy.merge && strategy.merge_key == Some(key), "{field}");
    }
    assert_eq!(
        container.field("ports").unwrap().list_type(),
        ListType::Map(vec!["containerPort", "protocol"])
    );
    let env_from = container.field("envFrom").unwrap();
    assert_eq!(env_from.list_type(), ListType::Atomic);
    assert!(!env_from.patch_strategy().merge);
    // Ephemeral containers inline the same fields.
    let ephemeral = walk(pod(), "spec.ephemeralContainers.[]");
    assert_eq!(
        ephemeral.field("env").unwrap().patch_strategy().merge_key,
        Some("name")
    );

    let status = walk(pod(), "status");
    for (field, key) in [("conditions", "type"), ("podIPs", "ip"), ("hostIPs", "ip")] {
        assert_eq!(
            status.field(field).unwrap().patch_strategy().merge_key,
            Some(key)
        );
    }
}

#[test]
fn object_meta_extensions() {
    let meta = walk(pod(), "metadata");
    let finalizers = meta.field("finalizers").unwrap();
    assert_eq!(
        finalizers.patch_strategy(),
        PatchStrategy {
            merge: true,
            ..PatchStrategy::default()
        }
    );
    assert_eq!(finalizers.list_type(), ListType::Set);
    let owners = meta.field("ownerReferences").unwrap();
    assert_eq!(owners.patch_strategy().merge_key, Some("uid"));
    assert_eq!(owners.list_type(), ListType::Map(vec!["uid"]));
    // Struct-level map type on the definition, visible through the cursor.
    assert_eq!(owners.items().unwrap().map_type(), MapType::Atomic);
    assert_eq!(
        meta.field("labels").unwrap().patch_strategy(),
        PatchStrategy::default()
    );
}

#[test]
fn workload_extensions() {
    let deployment = schemas().for_kind("apps", "v1", "Deployment").unwrap();
    let strategy = walk(deployment, "spec.strategy").patch_strategy();
    assert!(strategy.retain_keys && !strategy.merge);
    assert_eq!(
        walk(deployment, "spec.template.spec.containers")
            .patch_strategy()
            .merge_key,
        Some("name")
    );
    let selector = walk(deployment, "spec.selector");
    assert_eq!(selector.map_type(), MapType::Atomic);
    let expressions = selector.field("matchExpressions").unwrap();
    assert_eq!(expressions.list_type(), ListType::Atomic);
    assert!(!expressions.patch_strategy().merge);

    for kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"] {
        let schema = schemas().for_kind("apps", "v1", kind).unwrap();
        let conditions = walk(schema, "status.conditions").patch_strategy();
        assert_eq!(conditions.merge_key, Some("type"), "{kind}");
    }
    let job = schemas().for_kind("batch", "v1", "Job").unwrap();
    assert_eq!(
        walk(job, "status.conditions").patch_strategy().merge_key,
        Some("type")
    );

    let sa = schemas().for_kind("", "v1", "ServiceAccount").unwrap();
    assert_eq!(
        sa.field("secrets").unwrap().patch_strategy().merge_key,
        Some("name")
    );
}

#[test]
fn service_and_node_extensions() {
    let service = schemas().for_kind("", "v1", "Service").unwrap();
    let ports = walk(service, "spec.ports");
    assert_eq!(ports.patch_strategy().merge_key, Some("port"));
    assert_eq!(ports.list_type(), ListType::Map(vec!["port", "protocol"]));
    assert_eq!(
        walk(service, "spec.ports.[].targetPort").kind(),
        SchemaKind::Any
    );
    assert_eq!(walk(service, "spec.selector").map_type(), MapType::Atomic);

    let node = schemas().for_kind("", "v1", "Node").unwrap();
    let cidrs = walk(node, "spec.podCIDRs");
    assert!(cidrs.patch_strategy().merge);
    assert_eq!(cidrs.patch_strategy().merge_key, None);
    assert_eq!(walk(node, "spec.taints").list_type(), ListType::Atomic);
    assert!(!walk(node, "spec.taints").patch_strategy().merge);
    assert_eq!(
        walk(node, "status.conditions").patch_strategy().merge_key,
        Some("type")
    );
    assert_eq!(
        walk(node, "status.addresses").patch_strategy().merge_key,
        Some("type")
    );

    let endpoints = schemas().for_kind("", "v1", "Endpoints").unwrap();
    assert_eq!(walk(endpoints, "subsets").list_type(), ListType::Atomic);
    assert_eq!(
        walk(endpoints, "subsets.[].addresses").list_type(),
        ListType::Atomic
    );
}

#[test]
fn delete_options_and_watch_event_name_every_group_version() {
    let delete = schemas()
        .definition("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        .unwrap();
    let gvks = delete.extension(EXT_GVK).unwrap().as_array().unwrap();
    for (group, version) in [
        ("", "v1"),
        ("apps", "v1"),
        ("policy", "v1"),
        ("batch", "v1"),
    ] {
        assert!(
            gvks.contains(&json!({"group": group, "version": version, "kind": "DeleteOptions"}))
        );
    }
    assert!(schemas().for_kind("apps", "v1", "DeleteOptions").is_some());
    assert!(schemas().for_kind("", "v1", "WatchEvent").is_some());
    let event = schemas().for_kind("", "v1", "WatchEvent").unwrap();
    assert_eq!(event.field("object").unwrap().kind(), SchemaKind::Any);
}

#[test]
fn facts_name_existing_fields_of_the_right_shape() {
    for fact in FACTS {
        let def = schemas()
            .definition(fact.definition)
            .unwrap_or_else(|| panic!("no definition {}", fact.definition));
        let what = format!("{}.{}", fact.definition, fact.field);
        let target = if fact.field.is_empty() {
            def
        } else {
            def.field(fact.field)
                .unwrap_or_else(|| panic!("no field {what}"))
        };
        if fact.list_type.is_some() || fact.merge_key.is_some() {
            assert_eq!(target.kind(), SchemaKind::Array, "{what}");
        }
        if let Some(key) = fact.merge_key {
            let item = target.items().unwrap();
            assert!(item.field(key).is_some(), "{what}: merge key {key}");
        }
        for key in fact.list_map_keys {
            let item = target.items().unwrap();
            assert!(item.field(key).is_some(), "{what}: list map key {key}");
        }
        if fact.map_type.is_some() {
            assert!(
                matches!(target.kind(), SchemaKind::Object | SchemaKind::Map),
                "{what}"
            );
        }
        if let Some(strategy) = fact.patch_strategy {
            for part in strategy.split(',') {
                assert!(["merge", "retainKeys", "replace"].contains(&part), "{what}");
            }
        }
        // The extensions landed in the registry.
        for (name, value) in fact.extensions() {
            assert_eq!(target.extension(&name), Some(&value), "{what} {name}");
        }
    }
}

#[test]
fn unknown_fields_reports_kubernetes_style_paths() {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "labels": {"any-label": "x"},
            "annotations": {"free.form/key": "{\"nested\": true}"},
            "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:whatever": {}}}}],
            "nam": "typo",
        },
        "spec": {
            "containers": [
                {"name": "a", "image": "nginx", "imagePullPolicyy": "Always",
                 "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                 "ports": [{"containerPort": 80, "hostPortt": 1}]},
                {"name": "b", "image": "busybox", "livenessProbe": {"httpGet": {"port": "http"}}},
            ],
            "foo": {"bar": 1},
        },
        "extra": true,
    });
    let mut unknown = unknown_fields(pod(), &value);
    unknown.sort();
    assert_eq!(
        unknown,
        vec![
            ".extra",
            ".metadata.nam",
            ".spec.containers[0].imagePullPolicyy",
            ".spec.containers[0].ports[0].hostPortt",
            ".spec.foo",
        ]
    );
}

#[test]
fn unknown_fields_leaves_free_form_values_and_type_mismatches_alone() {
    let event = schemas().for_kind("", "v1", "WatchEvent").unwrap();
    let value = json!({"type": "ADDED", "object": {"anything": {"goes": 1}}});
    assert!(unknown_fields(event, &value).is_empty());
    // A string where an object belongs is the decoder's business.
    assert!(unknown_fields(pod(), &json!({"spec": "oops"})).is_empty());
    assert!(unknown_fields(pod(), &json!({})).is_empty());
    let deployment = schemas().for_kind("apps", "v1", "Deployment").unwrap();
    let value =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "x", "bogus": 1}]}}}});
    assert_eq!(
        unknown_fields(deployment, &value),
        vec![".spec.template.spec.containers[0].bogus"]
    );
}

#[test]
fn patch_strategy_parsing() {
    let parsed = PatchStrategy::parse(Some("merge,retainKeys"), Some("name"));
    assert!(parsed.merge && parsed.retain_keys && !parsed.replace);
    assert_eq!(parsed.merge_key, Some("name"));
    let parsed = PatchStrategy::parse(Some("replace"), None);
    assert!(parsed.replace && !parsed.merge);
    assert_eq!(PatchStrategy::parse(None, None), PatchStrategy::default());
    assert_eq!(
        PatchStrategy::parse(Some("bogus"), None),
        PatchStrategy::default()
    );
}

#[test]
fn custom_registries_and_cycles() {
    let mut definitions = serde_json::Map::new();
    definitions.insert(
        "a".into(),
        json!({"type": "object", "properties": {"next": {"$ref": "#/components/schemas/a"},
               "loop": {"$ref": "#/components/schemas/b"},
               "dangling": {"$ref": "#/components/schemas/missing"}}}),
    );
    definitions.insert("b".into(), json!({"$ref": "#/components/schemas/b"}));
    let kinds = vec![KindSchema {
        group: "example.com".into(),
        version: "v1".into(),
        kind: "A".into(),
        definition: "a".into(),
    }];
    let registry = Schemas::new(definitions, kinds);
    let a = registry.for_kind("example.com", "v1", "A").unwrap();
    assert_eq!(walk_custom(a, 5).definition_name(), Some("a"));
    // A self-referencing definition and a dangling ref do not hang or panic.
    assert_eq!(a.field("loop").unwrap().kind(), SchemaKind::Any);
    assert_eq!(a.field("dangling").unwrap().kind(), SchemaKind::Any);
    assert!(unknown_fields(a, &json!({"next": {"next": {"x": 1}}, "loop": {"y": 2}})).len() == 1);
}

fn walk_custom(mut schema: SchemaRef<'_>, depth: usize) -> SchemaRef<'_> {
    for _ in 0..depth {
        schema = schema.field("next").unwrap();
    }
    schema
}

// ---- OpenAPI documents ----

fn served() -> Vec<ServedResource> {
    vec![
        ServedResource::new("", "v1", "pods", "Pod", true).with_subresources(&[
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "ephemeralcontainers",
        ]),
        ServedResource::new("", "v1", "nodes", "Node", false).with_subresources(&["status"]),
        ServedResource::new("", "v1", "namespaces", "Namespace", false)
            .with_subresources(&["status", "finalize"]),
        ServedResource::new("", "v1", "bindings", "Binding", true).with_verbs(&["create"]),
        ServedResource::new("", "v1", "services", "Service", true).with_subresources(&["status"]),
        ServedResource::new("apps", "v1", "deployments", "Deployment", true)
            .with_subresources(&["status", "scale"]),
        ServedResource::new("apps", "v1", "replicasets", "ReplicaSet", true)
            .with_subresources(&["status", "scale"]),
        ServedResource::new("coordination.k8s.io", "v1", "leases", "Lease", true),
    ]
}

/// What kubectl 1.33 does to decide whether server-side field validation is available: the
/// first PATCH operation of the kind must list the parameter.
fn kubectl_supports_query_param(doc: &Value, gvk: Value, param: &str) -> bool {
    for item in doc["paths"].as_object().unwrap().values() {
        let Some(op) = item.get("patch") else {
            continue;
        };
        if op["x-kubernetes-group-version-kind"] != gvk {
            continue;
        }
        return op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == json!(param) && p["in"] == json!("query"));
    }
    false
}

fn all_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.insert(v.as_str().unwrap().to_owned());
                } else {
                    all_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| all_refs(i, out)),
        _ => {}
    }
}

#[test]
fn openapi_v3_apps_document() {
    let doc = openapi_v3_group_version("apps", "v1", &served());
    assert_eq!(doc["openapi"], json!("3.0.0"));
    assert!(doc["info"]["title"].is_string());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment[EXT_GVK],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    assert!(schemas.contains_key("io.k8s.api.apps.v1.DeploymentList"));
    assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
    // Only what the document references: no core kinds of their own.
    assert!(!schemas.contains_key("io.k8s.api.core.v1.Service"));
    assert!(!schemas.contains_key("io.k8s.api.coordination.v1.Lease"));
    // The patch extensions kubectl apply needs.
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers[EXT_PATCH_MERGE_KEY], json!("name"));
    assert_eq!(containers[EXT_PATCH_STRATEGY], json!("merge"));

    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &item["patch"];
    assert_eq!(patch["x-kubernetes-action"], json!("patch"));
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(
        patch["operationId"],
        json!("patchAppsV1NamespacedDeployment")
    );
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["dryRun", "fieldManager", "fieldValidation", "force"] {
        assert!(params.contains(&name), "{name}");
    }
    let content = patch["requestBody"]["content"].as_object().unwrap();
    for media in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(content.contains_key(media), "{media}");
    }
    assert_eq!(
        patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        json!("#/components/schemas/io.k8s.api.apps.v1.Deployment")
    );
    // Path-level parameters.
    let common: Vec<&str> = item["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(common, ["name", "namespace", "pretty"]);
    for method in ["get", "put", "delete"] {
        assert!(item.get(method).is_some(), "{method}");
    }
    assert!(kubectl_supports_query_param(
        &doc,
        json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
        "fieldValidation"
    ));
    assert!(!kubectl_supports_query_param(
        &doc,
        json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
        "bogus"
    ));

    let collection = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"];
    assert_eq!(collection["get"]["x-kubernetes-action"], json!("list"));
    assert_eq!(collection["post"]["x-kubernetes-action"], json!("post"));
    assert_eq!(
        collection["delete"]["x-kubernetes-action"],
        json!("deletecollection")
    );
    let list_params: Vec<&str> = collection["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "watch",
        "timeoutSeconds",
        "allowWatchBookmarks",
    ] {
        assert!(list_params.contains(&name), "{name}");
    }
    let delete_params = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["delete"]
        ["parameters"];
    for name in ["propagationPolicy", "gracePeriodSeconds", "dryRun"] {
        assert!(
            delete_params
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == json!(name))
        );
    }
    assert!(doc["paths"].get("/apis/apps/v1/deployments").is_some());

    let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["patch"]["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    let status = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"];
    assert_eq!(
        status["patch"]["x-kubernetes-group-version-kind"]["kind"],
        json!("Deployment")
    );
    assert!(
        status["patch"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == json!("fieldValidation"))
    );

    // Every reference resolves inside the document.
    let mut refs = BTreeSet::new();
    all_refs(&doc, &mut refs);
    for reference in refs {
        let name = reference.strip_prefix(COMPONENTS_PREFIX).unwrap();
        assert!(schemas.contains_key(name), "{reference}");
    }
}

#[test]
fn openapi_v3_core_document() {
    let doc = openapi_v3_group_version("", "v1", &served());
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods"));
    assert!(paths.contains_key("/api/v1/pods"));
    assert!(paths.contains_key("/api/v1/nodes"));
    assert!(paths.contains_key("/api/v1/nodes/{name}/status"));
    assert!(!paths.contains_key("/api/v1/nodes/{name}/scale"));
    assert!(!paths.keys().any(|p| p.starts_with("/apis/")));
    let binding = &paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"];
    assert_eq!(
        binding["x-kubernetes-group-version-kind"]["kind"],
        json!("Binding")
    );
    let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"],
        json!({"group": "policy", "version": "v1", "kind": "Eviction"})
    );
    let log = &paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"];
    assert!(
        log["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == json!("follow"))
    );
    let exec = &paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
    assert_eq!(exec["post"]["x-kubernetes-action"], json!("connect"));
    // bindings: create only.
    let bindings = &paths["/api/v1/namespaces/{namespace}/bindings"];
    assert!(bindings.get("post").is_some() && bindings.get("get").is_none());
    assert!(!paths.contains_key("/api/v1/namespaces/{namespace}/bindings/{name}"));
    assert!(!paths.contains_key("/api/v1/bindings"));
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("io.k8s.api.policy.v1.Eviction"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.Status"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"));
    assert!(kubectl_supports_query_param(
        &doc,
        json!({"group": "", "version": "v1", "kind": "Pod"}),
        "fieldValidation"
    ));
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"],
        json!("listCoreV1NamespacedPod")
    );
    assert_eq!(
        paths["/api/v1/pods"]["get"]["operationId"],
        json!("listCoreV1PodForAllNamespaces")
    );
    assert_eq!(
        paths["/api/v1/nodes/{name}"]["get"]["operationId"],
        json!("readCoreV1Node")
    );
    assert_eq!(
        paths["/api/v1/nodes/{name}"]["get"]["tags"],
        json!(["core_v1"])
    );
}

#[test]
fn openapi_v3_index_hashes_each_document() {
    let resources = served();
    let index = openapi_v3_index(&resources);
    let paths = index["paths"].as_object().unwrap();
    let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3);
    for key in ["api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1"] {
        assert!(paths.contains_key(key), "{key}");
    }
    let apps = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
    let hash = openapi::content_hash(&openapi_v3_group_version("apps", "v1", &resources));
    assert_eq!(apps, format!("/openapi/v3/apis/apps/v1?hash={hash}"));
    assert_eq!(hash.len(), 32);
    // Deterministic, and content-sensitive.
    assert_eq!(index, openapi_v3_index(&resources));
    let fewer: Vec<_> = resources
        .iter()
        .filter(|r| r.resource != "replicasets")
        .cloned()
        .collect();
    let other = openapi_v3_index(&fewer);
    assert_ne!(
        other["paths"]["apis/apps/v1"],
        index["paths"]["apis/apps/v1"]
    );
    assert_eq!(other["paths"]["api/v1"], index["paths"]["api/v1"]);
}

#[test]
fn index_hash_matches_the_document_served_from_a_filtered_list() {
    // The API server passes every resource to the index but only a group-version's resources
    // to its document; both must hash the same.
    let resources = served();
    let index = openapi_v3_index(&resources);
    let core: Vec<_> = resources
        .iter()
        .filter(|r| r.group.is_empty())
        .cloned()
        .collect();
    let hash = openapi::content_hash(&openapi_v3_group_version("", "v1", &core));
    assert_eq!(
        index["paths"]["api/v1"]["serverRelativeURL"],
        json!(format!("/openapi/v3/api/v1?hash={hash}"))
    );
    // Cached results equal fresh ones.
    assert_eq!(
        openapi_v3_group_version("", "v1", &core),
        Schemas::builtin().openapi_v3_group_version("", "v1", &core)
    );
    assert_eq!(
        openapi_v2(&resources),
        Schemas::builtin().openapi_v2(&resources)
    );
}

#[test]
fn openapi_v2_document() {
    let doc = openapi_v2(&served());
    assert_eq!(doc["swagger"], json!("2.0"));
    let text = doc.to_string();
    assert!(!text.contains("#/components/"));
    let definitions = doc["definitions"].as_object().unwrap();
    let pod = &definitions["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod[EXT_GVK],
        json!([{"group": "", "version": "v1", "kind": "Pod"}])
    );
    // Swagger 2 style refs with siblings.
    let spec = &pod["properties"]["spec"];
    assert_eq!(
        spec["$ref"],
        json!("#/definitions/io.k8s.api.core.v1.PodSpec")
    );
    assert!(spec.get("allOf").is_none());
    assert!(spec["description"].is_string());
    assert_eq!(
        definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"][EXT_PATCH_MERGE_KEY],
        json!("name")
    );
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(
        patch["consumes"]
            .as_array()
            .unwrap()
            .contains(&json!("application/strategic-merge-patch+json"))
    );
    let params = patch["parameters"].as_array().unwrap();
    assert!(params.iter().any(|p| p["in"] == json!("body")));
    assert!(
        params
            .iter()
            .any(|p| p["name"] == json!("fieldValidation") && p["type"] == json!("string"))
    );
    let mut refs = BTreeSet::new();
    all_refs(&doc, &mut refs);
    for reference in refs {
        let name = reference.strip_prefix("#/definitions/").unwrap();
        assert!(definitions.contains_key(name), "{reference}");
    }
}

#[test]
fn served_resource_round_trips_through_json() {
    let r = ServedResource::new("apps", "v1", "deployments", "Deployment", true)
        .with_subresources(&["scale"]);
    let value = serde_json::to_value(&r).unwrap();
    assert_eq!(value["subresources"], json!(["scale"]));
    let back: ServedResource = serde_json::from_value(value).unwrap();
    assert_eq!(back, r);
    assert_eq!(openapi::group_version_path("", "v1"), "api/v1");
    assert_eq!(openapi::group_version_path("apps", "v1"), "apis/apps/v1");
}

#[test]
fn unknown_kinds_get_free_form_bodies() {
    let resources = vec![ServedResource::new(
        "example.com",
        "v1",
        "widgets",
        "Widget",
        false,
    )];
    let doc = openapi_v3_group_version("example.com", "v1", &resources);
    let get = &doc["paths"]["/apis/example.com/v1/widgets/{name}"]["get"];
    assert_eq!(
        get["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"type": "object"})
    );
    assert_eq!(get["operationId"], json!("readExampleComV1Widget"));
}
