//! Builds the built-in registry: generates the definitions of the served kinds with a schemars
//! generator set up for OpenAPI 3, adds the `…List` kinds, the group-version-kind extensions and
//! the patch/list extensions of [`super::facts`].

use std::collections::BTreeSet;

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v1 as autoscaling, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::{ListableResource, Resource};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::{COMPONENTS_PREFIX, EXT_GVK, KindSchema, Schemas, facts};

const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

/// A root kind registered during the build.
struct Root {
    definition: String,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    list_kind: Option<&'static str>,
}

fn root<T: JsonSchema + Resource>(generator: &mut SchemaGenerator) -> Root {
    generator.subschema_for::<T>();
    Root {
        definition: T::schema_name().into_owned(),
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: None,
    }
}

fn listable<T: JsonSchema + ListableResource>(generator: &mut SchemaGenerator) -> Root {
    Root {
        list_kind: Some(T::LIST_KIND),
        ..root::<T>(generator)
    }
}

/// Builds the registry of the built-in kinds.
pub(super) fn build() -> Schemas {
    let mut generator = SchemaSettings::openapi3()
        .with(|settings| settings.meta_schema = None)
        .into_generator();
    let g = &mut generator;
    let roots = vec![
        listable::<core::Namespace>(g),
        listable::<core::Node>(g),
        listable::<core::Pod>(g),
        root::<core::Binding>(g),
        listable::<core::Service>(g),
        listable::<core::Endpoints>(g),
        listable::<core::ConfigMap>(g),
        listable::<core::Secret>(g),
        listable::<core::Event>(g),
        listable::<core::ServiceAccount>(g),
        listable::<core::PersistentVolume>(g),
        listable::<core::PersistentVolumeClaim>(g),
        listable::<core::ResourceQuota>(g),
        listable::<apps::Deployment>(g),
        listable::<apps::ReplicaSet>(g),
        listable::<apps::DaemonSet>(g),
        listable::<apps::StatefulSet>(g),
        root::<autoscaling::Scale>(g),
        listable::<batch::Job>(g),
        listable::<batch::CronJob>(g),
        listable::<policy::PodDisruptionBudget>(g),
        listable::<networking::Ingress>(g),
        listable::<networking::IngressClass>(g),
        listable::<networking::NetworkPolicy>(g),
        listable::<storage::StorageClass>(g),
        listable::<coordination::Lease>(g),
        listable::<discovery::EndpointSlice>(g),
        listable::<events::Event>(g),
        listable::<scheduling::PriorityClass>(g),
        listable::<certificates::CertificateSigningRequest>(g),
        root::<policy::Eviction>(g),
        listable::<rbac::Role>(g),
        listable::<rbac::RoleBinding>(g),
        listable::<rbac::ClusterRole>(g),
        listable::<rbac::ClusterRoleBinding>(g),
        root::<authorization::SelfSubjectAccessReview>(g),
        root::<authorization::SubjectAccessReview>(g),
        root::<authorization::SelfSubjectRulesReview>(g),
        root::<authentication::SelfSubjectReview>(g),
        root::<authentication::TokenReview>(g),
        root::<authentication::TokenRequest>(g),
        root::<meta::Status>(g),
    ];
    // Supporting types that paths or clients reference without a kind of their own.
    g.subschema_for::<meta::ListMeta>();
    g.subschema_for::<meta::DeleteOptions>();
    g.subschema_for::<meta::WatchEvent<core::Pod>>();
    g.subschema_for::<meta::Patch>();
    g.subschema_for::<meta::APIResourceList>();
    g.subschema_for::<meta::APIGroupList>();
    g.subschema_for::<meta::APIGroup>();
    g.subschema_for::<meta::APIVersions>();

    let mut definitions = generator.take_definitions(true);
    let mut kinds = Vec::new();
    for r in &roots {
        set_gvk(
            &mut definitions,
            &r.definition,
            &[(r.group, r.version, r.kind)],
        );
        kinds.push(kind_schema(r.group, r.version, r.kind, &r.definition));
        if let Some(list_kind) = r.list_kind {
            let list_name = format!("{}List", r.definition);
            definitions.insert(list_name.clone(), list_schema(r, list_kind));
            kinds.push(kind_schema(r.group, r.version, list_kind, &list_name));
        }
    }
    // DeleteOptions and WatchEvent are kinds of every group-version.
    let group_versions: BTreeSet<(&str, &str)> =
        roots.iter().map(|r| (r.group, r.version)).collect();
    for (definition, kind) in [
        (DELETE_OPTIONS, "DeleteOptions"),
        (WATCH_EVENT, "WatchEvent"),
    ] {
        let gvks: Vec<_> = group_versions.iter().map(|&(g, v)| (g, v, kind)).collect();
        set_gvk(&mut definitions, definition, &gvks);
        for &(g, v) in &group_versions {
            kinds.push(kind_schema(g, v, kind, definition));
        }
    }
    debug_assert!(definitions.contains_key(STATUS));
    facts::apply(&mut definitions);
    Schemas::new(definitions, kinds)
}

fn kind_schema(group: &str, version: &str, kind: &str, definition: &str) -> KindSchema {
    KindSchema {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        definition: definition.to_owned(),
    }
}

fn set_gvk(definitions: &mut Map<String, Value>, definition: &str, gvks: &[(&str, &str, &str)]) {
    if let Some(Value::Object(schema)) = definitions.get_mut(definition) {
        let list = gvks
            .iter()
            .map(|(group, version, kind)| json!({"group": group, "version": version, "kind": kind}))
            .collect();
        schema.insert(EXT_GVK.to_owned(), Value::Array(list));
    }
}

/// The schema of a `…List` kind, shaped like upstream's.
fn list_schema(r: &Root, list_kind: &str) -> Value {
    let reference = |name: &str| json!({"$ref": format!("{COMPONENTS_PREFIX}{name}")});
    json!({
        "description": format!("{list_kind} is a list of {} objects.", r.kind),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string",
            },
            "items": {
                "description": format!("List of {} objects.", r.kind),
                "type": "array",
                "items": reference(&r.definition),
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string",
            },
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "allOf": [reference(LIST_META)],
            },
        },
        "required": ["items"],
        EXT_GVK: [{"group": r.group, "version": r.version, "kind": list_kind}],
    })
}
