//! OpenAPI documents of the served API, generated from the schema registry and the list of
//! served resources: the OpenAPI v3 index (`/openapi/v3`), one OpenAPI 3.0 document per
//! group-version (`/openapi/v3/apis/<group>/<version>`), and a Swagger 2.0 document
//! (`/openapi/v2`, which [`super::swagger_pb`] also encodes as protobuf).
//!
//! kubectl 1.33 relies on these documents: `kubectl explain` finds a kind's schema by its
//! `x-kubernetes-group-version-kind`, client-side apply reads the patch extensions from the
//! group-version document, and kubectl decides whether it may ask for server-side field
//! validation by looking for a `fieldValidation` query parameter on the kind's PATCH operation.
//!
//! The documents are deterministic: equal inputs give equal documents (and equal hashes), so the
//! caller can build them once per set of served resources and cache them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{COMPONENTS_PREFIX, EXT_GVK, Schemas};

/// Definition of the body of PATCH requests.
const PATCH_DEFINITION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS_DEFINITION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS_DEFINITION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const SWAGGER2_PREFIX: &str = "#/definitions/";

/// A resource the API server serves, as its discovery documents describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedResource {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `pods`.
    pub resource: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Kubernetes verbs on the resource: `get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`.
    pub verbs: Vec<String>,
    /// Subresources, e.g. `status`, `scale`, `binding`, `eviction`, `log`, `exec`.
    pub subresources: Vec<String>,
}

impl ServedResource {
    /// A resource with the given coordinates and the usual verbs (all eight) and no
    /// subresources.
    pub fn new(group: &str, version: &str, resource: &str, kind: &str, namespaced: bool) -> Self {
        let verbs = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        ServedResource {
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
            kind: kind.to_owned(),
            namespaced,
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            subresources: Vec::new(),
        }
    }

    /// Sets the verbs.
    pub fn with_verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Sets the subresources.
    pub fn with_subresources(mut self, subresources: &[&str]) -> Self {
        self.subresources = subresources.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// The OpenAPI v3 discovery index (`/openapi/v3`): one entry per served group-version, whose
/// `serverRelativeURL` carries a content hash of that group-version's document.
///
/// This and the other document functions of the built-in registry remember their recent
/// results, so serving them per request is cheap.
pub fn openapi_v3_index(resources: &[ServedResource]) -> Value {
    cached(DocumentKey::Index, resources, || {
        Schemas::builtin().openapi_v3_index(resources)
    })
}

/// The OpenAPI 3.0 document of one group-version, built from the served resources of that
/// group-version (others in `resources` are ignored).
pub fn openapi_v3_group_version(group: &str, version: &str, resources: &[ServedResource]) -> Value {
    let key = DocumentKey::GroupVersion(group.to_owned(), version.to_owned());
    cached(key, resources, || {
        Schemas::builtin().openapi_v3_group_version(group, version, resources)
    })
}

/// A Swagger 2.0 document of every served resource (`/openapi/v2`).
pub fn openapi_v2(resources: &[ServedResource]) -> Value {
    cached(DocumentKey::V2, resources, || {
        Schemas::builtin().openapi_v2(resources)
    })
}

/// Which document a cache entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DocumentKey {
    Index,
    GroupVersion(String, String),
    V2,
}

type CacheEntry = (DocumentKey, Vec<ServedResource>, Value);

/// Recent documents of the built-in registry, by document and served resources.
static CACHE: Mutex<Vec<CacheEntry>> = Mutex::new(Vec::new());

/// Most documents the cache holds (the documents of a few sets of served resources).
const CACHE_CAPACITY: usize = 64;

fn cached(key: DocumentKey, resources: &[ServedResource], build: impl FnOnce() -> Value) -> Value {
    let lookup = |cache: &[CacheEntry]| {
        cache
            .iter()
            .find(|(k, r, _)| *k == key && r.as_slice() == resources)
            .map(|(_, _, doc)| doc.clone())
    };
    // A poisoned lock only means another thread panicked mid-update; the data is still whole.
    if let Some(doc) = lookup(&CACHE.lock().unwrap_or_else(|e| e.into_inner())) {
        return doc;
    }
    let doc = build();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if lookup(&cache).is_none() {
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.push((key, resources.to_vec(), doc.clone()));
    }
    doc
}

/// The path of a group-version's document relative to `/openapi/v3/`: `api/v1` or
/// `apis/<group>/<version>`.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// An uppercase hex content hash of a JSON document, stable across runs and builds.
pub fn content_hash(document: &Value) -> String {
    let bytes = serde_json::to_vec(document).unwrap_or_default();
    // Two FNV-1a 64 variants (different offset bases) make a 128-bit hash.
    let fnv = |basis: u64| {
        bytes.iter().fold(basis, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016X}{:016X}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

impl Schemas {
    /// See [`openapi_v3_index`].
    pub fn openapi_v3_index(&self, resources: &[ServedResource]) -> Value {
        let group_versions: BTreeSet<(&str, &str)> = resources
            .iter()
            .map(|r| (r.group.as_str(), r.version.as_str()))
            .collect();
        let mut paths = Map::new();
        for (group, version) in group_versions {
            let path = group_version_path(group, version);
            let hash = content_hash(&self.openapi_v3_group_version(group, version, resources));
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            );
        }
        json!({ "paths": paths })
    }

    /// See [`openapi_v3_group_version`].
    pub fn openapi_v3_group_version(
        &self,
        group: &str,
        version: &str,
        resources: &[ServedResource],
    ) -> Value {
        let served: Vec<&ServedResource> = resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .collect();
        let items = self.path_items(&served);
        let mut paths = Map::new();
        let mut referenced = BTreeSet::new();
        for item in &items {
            paths.insert(item.path.clone(), item.to_v3(&mut referenced));
        }
        let mut schemas = Map::new();
        for name in self.closure(referenced) {
            if let Some(schema) = self.definitions.get(&name) {
                schemas.insert(name, schema.clone());
            }
        }
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "BearerToken": {
                        "type": "apiKey",
                        "description": "Bearer Token authentication",
                        "name": "authorization",
                        "in": "header",
                    },
                },
            },
            "security": [{"BearerToken": []}],
        })
    }

    /// See [`openapi_v2`].
    pub fn openapi_v2(&self, resources: &[ServedResource]) -> Value {
        let served: Vec<&ServedResource> = resources.iter().collect();
        let items = self.path_items(&served);
        let mut paths = Map::new();
        let mut referenced = BTreeSet::new();
        for item in &items {
            paths.insert(item.path.clone(), item.to_v2(&mut referenced));
        }
        let mut definitions = Map::new();
        for name in self.closure(referenced) {
            if let Some(schema) = self.definitions.get(&name) {
                definitions.insert(name, to_swagger2(schema));
            }
        }
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": paths,
            "definitions": definitions,
            "securityDefinitions": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
            "security": [{"BearerToken": []}],
        })
    }

    /// The definitions `roots` name and every definition they reference, transitively.
    fn closure(&self, roots: BTreeSet<String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().collect();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = self.definitions.get(&name) {
                collect_refs(schema, &mut |target| {
                    if !seen.contains(target) {
                        stack.push(target.to_owned());
                    }
                });
            }
        }
        seen
    }

    /// The definition name of a kind's schema, if registered.
    fn kind_definition(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
            .map(|k| k.definition.as_str())
    }

    /// The path items of the given resources, sorted by path.
    fn path_items(&self, served: &[&ServedResource]) -> Vec<PathItem> {
        let mut items: BTreeMap<String, PathItem> = BTreeMap::new();
        for resource in served {
            for item in self.resource_path_items(resource) {
                match items.get_mut(&item.path) {
                    // Resources sharing a path (none in practice) keep the first operations.
                    Some(existing) => {
                        for op in item.operations {
                            if !existing.operations.iter().any(|o| o.method == op.method) {
                                existing.operations.push(op);
                            }
                        }
                    }
                    None => {
                        items.insert(item.path.clone(), item);
                    }
                }
            }
        }
        items.into_values().collect()
    }

    fn resource_path_items(&self, r: &ServedResource) -> Vec<PathItem> {
        let gv_path = format!("/{}", group_version_path(&r.group, &r.version));
        let names = OperationNames::new(r);
        let gvk = Gvk::new(&r.group, &r.version, &r.kind);
        let object = self.body(&r.group, &r.version, &r.kind);
        let list = self.body(&r.group, &r.version, &format!("{}List", r.kind));
        let status = Body::Definition(STATUS_DEFINITION.to_owned());
        let delete_options = Body::Definition(DELETE_OPTIONS_DEFINITION.to_owned());
        let scope = if r.namespaced { "Namespaced" } else { "" };
        let collection_path = if r.namespaced {
            format!("{gv_path}/namespaces/{{namespace}}/{}", r.resource)
        } else {
            format!("{gv_path}/{}", r.resource)
        };
        let mut scope_params = Vec::new();
        if r.namespaced {
            scope_params.push(Param::path("namespace"));
        }
        let mut out = Vec::new();

        // The collection: list (and watch), create, deletecollection.
        let mut collection = PathItem::new(&collection_path, &names.tag, &scope_params);
        if r.has_verb("list") || r.has_verb("watch") {
            collection.operations.push(Operation {
                method: "get",
                action: "list",
                operation_id: names.id("list", scope, ""),
                description: format!("list or watch objects of kind {}", r.kind),
                gvk: Some(gvk.clone()),
                params: LIST_PARAMS.iter().map(|p| Param::query(p)).collect(),
                body: None,
                response: list.clone(),
                produces: Produces::List,
            });
        }
        if r.has_verb("create") {
            collection.operations.push(Operation {
                method: "post",
                action: "post",
                operation_id: names.id("create", scope, ""),
                description: format!("create {}", article(&r.kind)),
                gvk: Some(gvk.clone()),
                params: WRITE_PARAMS.iter().map(|p| Param::query(p)).collect(),
                body: Some(object.clone()),
                response: object.clone(),
                produces: Produces::Object,
            });
        }
        if r.has_verb("deletecollection") {
            collection.operations.push(Operation {
                method: "delete",
                action: "deletecollection",
                operation_id: names.id("deleteCollection", scope, ""),
                description: format!("delete collection of {}", r.kind),
                gvk: Some(gvk.clone()),
                params: DELETE_COLLECTION_PARAMS
                    .iter()
                    .map(|p| Param::query(p))
                    .collect(),
                body: Some(delete_options.clone()),
                response: status.clone(),
                produces: Produces::Object,
            });
        }
        if !collection.operations.is_empty() {
            out.push(collection);
        }

        // Listing across namespaces.
        if r.namespaced && (r.has_verb("list") || r.has_verb("watch")) {
            let mut all = PathItem::new(&format!("{gv_path}/{}", r.resource), &names.tag, &[]);
            all.operations.push(Operation {
                method: "get",
                action: "list",
                operation_id: names.id("list", "", "ForAllNamespaces"),
                description: format!("list or watch objects of kind {}", r.kind),
                gvk: Some(gvk.clone()),
                params: LIST_PARAMS.iter().map(|p| Param::query(p)).collect(),
                body: None,
                response: list.clone(),
                produces: Produces::List,
            });
            out.push(all);
        }

        // One object: read, replace, patch, delete.
        let mut item_params = scope_params.clone();
        item_params.insert(0, Param::path("name"));
        let item_path = format!("{collection_path}/{{name}}");
        let mut item = PathItem::new(&item_path, &names.tag, &item_params);
        if r.has_verb("get") {
            item.operations.push(Operation {
                method: "get",
                action: "get",
                operation_id: names.id("read", scope, ""),
                description: format!("read the specified {}", r.kind),
                gvk: Some(gvk.clone()),
                params: Vec::new(),
                body: None,
                response: object.clone(),
                produces: Produces::Object,
            });
        }
        if r.has_verb("update") {
            item.operations
                .push(replace_operation(&names, scope, "", &gvk, &object));
        }
        if r.has_verb("patch") {
            item.operations
                .push(patch_operation(&names, scope, "", &gvk, &object));
        }
        if r.has_verb("delete") {
            item.operations.push(Operation {
                method: "delete",
                action: "delete",
                operation_id: names.id("delete", scope, ""),
                description: format!("delete {}", article(&r.kind)),
                gvk: Some(gvk.clone()),
                params: DELETE_PARAMS.iter().map(|p| Param::query(p)).collect(),
                body: Some(delete_options.clone()),
                response: status.clone(),
                produces: Produces::Object,
            });
        }
        if !item.operations.is_empty() {
            out.push(item);
        }

        for sub in &r.subresources {
            let path = format!("{item_path}/{sub}");
            let mut sub_item = PathItem::new(&path, &names.tag, &item_params);
            sub_item.operations = self.subresource_operations(r, &names, scope, sub, &gvk, &object);
            if !sub_item.operations.is_empty() {
                out.push(sub_item);
            }
        }
        out
    }

    fn subresource_operations(
        &self,
        r: &ServedResource,
        names: &OperationNames,
        scope: &str,
        sub: &str,
        gvk: &Gvk,
        object: &Body,
    ) -> Vec<Operation> {
        let suffix = camel(sub);
        let post = |gvk: Gvk, body: Body| Operation {
            method: "post",
            action: "post",
            operation_id: names.id("create", scope, &suffix),
            description: format!("create {} of {}", sub, article(&r.kind)),
            gvk: Some(gvk),
            params: WRITE_PARAMS.iter().map(|p| Param::query(p)).collect(),
            body: Some(body.clone()),
            response: body,
            produces: Produces::Object,
        };
        let connect = |kind: &str, params: &[&'static str]| -> Vec<Operation> {
            ["get", "post"]
                .into_iter()
                .map(|method| Operation {
                    method,
                    action: "connect",
                    operation_id: names.id(&format!("connect{}", camel(method)), scope, &suffix),
                    description: format!("connect {method} requests to {sub} of {}", r.kind),
                    gvk: Some(Gvk::new(&r.group, &r.version, kind)),
                    params: params.iter().map(|p| Param::query(p)).collect(),
                    body: None,
                    response: Body::Text,
                    produces: Produces::Text,
                })
                .collect()
        };
        match sub {
            "scale" => {
                let scale_gvk = Gvk::new("autoscaling", "v1", "Scale");
                let scale = self.body("autoscaling", "v1", "Scale");
                read_replace_patch(r, names, scope, &suffix, &scale_gvk, &scale)
            }
            "binding" => vec![post(
                Gvk::new("", "v1", "Binding"),
                self.body("", "v1", "Binding"),
            )],
            "eviction" => {
                let body = self.body("policy", "v1", "Eviction");
                vec![post(Gvk::new("policy", "v1", "Eviction"), body)]
            }
            "log" => vec![Operation {
                method: "get",
                action: "get",
                operation_id: names.id("read", scope, &suffix),
                description: format!("read log of the specified {}", r.kind),
                gvk: Some(gvk.clone()),
                params: LOG_PARAMS.iter().map(|p| Param::query(p)).collect(),
                body: None,
                response: Body::Text,
                produces: Produces::Text,
            }],
            "exec" => connect("PodExecOptions", EXEC_PARAMS),
            "attach" => connect("PodAttachOptions", ATTACH_PARAMS),
            "portforward" => connect("PodPortForwardOptions", &["ports"]),
            "proxy" => connect(&format!("{}ProxyOptions", r.kind), &["path"]),
            "finalize" => vec![replace_operation(names, scope, &suffix, gvk, object)],
            // status, ephemeralcontainers, resize and others: the object itself.
            _ => read_replace_patch(r, names, scope, &suffix, gvk, object),
        }
    }

    /// The request/response body of a kind: its registered definition, else a free-form
    /// object.
    fn body(&self, group: &str, version: &str, kind: &str) -> Body {
        match self.kind_definition(group, version, kind) {
            Some(name) => Body::Definition(name.to_owned()),
            None => Body::FreeForm,
        }
    }
}

fn read_replace_patch(
    r: &ServedResource,
    names: &OperationNames,
    scope: &str,
    suffix: &str,
    gvk: &Gvk,
    body: &Body,
) -> Vec<Operation> {
    let mut ops = vec![Operation {
        method: "get",
        action: "get",
        operation_id: names.id("read", scope, suffix),
        description: format!("read {} of the specified {}", suffix.to_lowercase(), r.kind),
        gvk: Some(gvk.clone()),
        params: Vec::new(),
        body: None,
        response: body.clone(),
        produces: Produces::Object,
    }];
    if r.has_verb("update") {
        ops.push(replace_operation(names, scope, suffix, gvk, body));
    }
    if r.has_verb("patch") {
        ops.push(patch_operation(names, scope, suffix, gvk, body));
    }
    ops
}

fn replace_operation(
    names: &OperationNames,
    scope: &str,
    suffix: &str,
    gvk: &Gvk,
    body: &Body,
) -> Operation {
    Operation {
        method: "put",
        action: "put",
        operation_id: names.id("replace", scope, suffix),
        description: format!("replace the specified {}{}", gvk.kind, spaced(suffix)),
        gvk: Some(gvk.clone()),
        params: WRITE_PARAMS.iter().map(|p| Param::query(p)).collect(),
        body: Some(body.clone()),
        response: body.clone(),
        produces: Produces::Object,
    }
}

fn patch_operation(
    names: &OperationNames,
    scope: &str,
    suffix: &str,
    gvk: &Gvk,
    body: &Body,
) -> Operation {
    Operation {
        method: "patch",
        action: "patch",
        operation_id: names.id("patch", scope, suffix),
        description: format!(
            "partially update the specified {}{}",
            gvk.kind,
            spaced(suffix)
        ),
        gvk: Some(gvk.clone()),
        params: PATCH_PARAMS.iter().map(|p| Param::query(p)).collect(),
        body: Some(Body::Patch),
        response: body.clone(),
        produces: Produces::Object,
    }
}

fn spaced(suffix: &str) -> String {
    if suffix.is_empty() {
        String::new()
    } else {
        format!(" {}", suffix.to_lowercase())
    }
}

fn article(kind: &str) -> String {
    let vowel = kind
        .chars()
        .next()
        .is_some_and(|c| "AEIOU".contains(c.to_ascii_uppercase()));
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

/// `status` → `Status`, `portforward` → `Portforward`.
fn camel(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Builds upstream-style operation ids (`listCoreV1NamespacedPod`) and tags (`core_v1`).
struct OperationNames {
    group_version: String,
    tag: String,
    kind: String,
}

impl OperationNames {
    fn new(r: &ServedResource) -> Self {
        let group_words: Vec<String> = if r.group.is_empty() {
            vec!["core".to_owned()]
        } else {
            r.group
                .trim_end_matches(".k8s.io")
                .split('.')
                .map(str::to_owned)
                .collect()
        };
        let group_camel: String = group_words.iter().map(|w| camel(w)).collect();
        let mut tag = String::new();
        if let Some((first, rest)) = group_words.split_first() {
            tag.push_str(first);
            tag.extend(rest.iter().map(|w| camel(w)));
        }
        OperationNames {
            group_version: format!("{group_camel}{}", camel(&r.version)),
            tag: format!("{tag}_{}", r.version),
            kind: r.kind.clone(),
        }
    }

    fn id(&self, verb: &str, scope: &str, suffix: &str) -> String {
        format!("{verb}{}{scope}{}{suffix}", self.group_version, self.kind)
    }
}

/// A `{group, version, kind}` triple.
#[derive(Debug, Clone)]
struct Gvk {
    group: String,
    version: String,
    kind: String,
}

impl Gvk {
    fn new(group: &str, version: &str, kind: &str) -> Gvk {
        Gvk {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        json!({"group": self.group, "version": self.version, "kind": self.kind})
    }
}

/// A request or response body.
#[derive(Debug, Clone)]
enum Body {
    /// A registered definition.
    Definition(String),
    /// A PATCH body (any of the four patch types).
    Patch,
    /// An object of a kind the registry lacks.
    FreeForm,
    /// Plain text (logs, streams).
    Text,
}

impl Body {
    /// The body's schema, with refs under `prefix`; records referenced definitions.
    fn schema(&self, prefix: &str, referenced: &mut BTreeSet<String>) -> Value {
        match self {
            Body::Definition(name) => {
                referenced.insert(name.clone());
                json!({"$ref": format!("{prefix}{name}")})
            }
            Body::Patch => {
                referenced.insert(PATCH_DEFINITION.to_owned());
                json!({"$ref": format!("{prefix}{PATCH_DEFINITION}")})
            }
            Body::FreeForm => json!({"type": "object"}),
            Body::Text => json!({"type": "string"}),
        }
    }
}

/// Which media types an operation responds with.
#[derive(Debug, Clone, Copy)]
enum Produces {
    Object,
    List,
    Text,
}

impl Produces {
    fn media_types(self) -> &'static [&'static str] {
        match self {
            Produces::Object => &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
            Produces::List => &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
                "application/json;stream=watch",
                "application/vnd.kubernetes.protobuf;stream=watch",
            ],
            Produces::Text => &["text/plain", "application/json", "*/*"],
        }
    }
}

const PATCH_MEDIA_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const LOG_PARAMS: &[&str] = &[
    "container",
    "follow",
    "insecureSkipTLSVerifyBackend",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "stream",
    "tailLines",
    "timestamps",
];
const EXEC_PARAMS: &[&str] = &["command", "container", "stderr", "stdin", "stdout", "tty"];
const ATTACH_PARAMS: &[&str] = &["container", "stderr", "stdin", "stdout", "tty"];

/// The JSON type and description of a query or path parameter.
fn param_facts(name: &str) -> (&'static str, &'static str) {
    match name {
        "name" => ("string", "name of the object"),
        "namespace" => (
            "string",
            "object name and auth scope, such as for teams and projects",
        ),
        "pretty" => (
            "string",
            "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
        ),
        "allowWatchBookmarks" => (
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag.",
        ),
        "continue" => (
            "string",
            "The continue option should be set when retrieving more results from the server: the value is the continue token of the previous page.",
        ),
        "fieldSelector" => (
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        "labelSelector" => (
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        "limit" => (
            "integer",
            "limit is a maximum number of responses to return for a list call; the server returns a continue token when more items exist.",
        ),
        "resourceVersion" => (
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset.",
        ),
        "resourceVersionMatch" => (
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls (Exact or NotOlderThan).",
        ),
        "sendInitialEvents" => (
            "boolean",
            "sendInitialEvents=true may be set together with watch=true to start the watch stream with synthetic events for the existing objects, then a bookmark.",
        ),
        "timeoutSeconds" => (
            "integer",
            "Timeout for the list/watch call, regardless of any activity or inactivity.",
        ),
        "watch" => (
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
        ),
        "dryRun" => (
            "string",
            "When present, indicates that modifications should not be persisted. The only valid value is All: all dry run stages are processed.",
        ),
        "fieldManager" => (
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes. At most 128 printable characters.",
        ),
        "fieldValidation" => (
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn (the default) or Strict.",
        ),
        "force" => (
            "boolean",
            "Force is going to \"force\" Apply requests: it re-acquires conflicting fields owned by other people. Must be unset for non-apply patch requests.",
        ),
        "gracePeriodSeconds" => (
            "integer",
            "The duration in seconds before the object should be deleted. Zero means delete immediately; unset means the kind's default.",
        ),
        "ignoreStoreReadErrorWithClusterBreakingPotential" => (
            "boolean",
            "if set to true, the server deletes an object whose stored data cannot be read (corrupt objects). Dangerous.",
        ),
        "orphanDependents" => (
            "boolean",
            "Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned.",
        ),
        "propagationPolicy" => (
            "string",
            "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
        ),
        "container" => (
            "string",
            "The container for which to stream logs or run the command.",
        ),
        "follow" => ("boolean", "Follow the log stream of the pod."),
        "insecureSkipTLSVerifyBackend" => (
            "boolean",
            "insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to.",
        ),
        "limitBytes" => (
            "integer",
            "If set, the number of bytes to read from the server before terminating the log output.",
        ),
        "previous" => ("boolean", "Return previous terminated container logs."),
        "sinceSeconds" => (
            "integer",
            "A relative time in seconds before the current time from which to show logs.",
        ),
        "stream" => (
            "string",
            "Specify which container log stream to return: All, Stdout or Stderr.",
        ),
        "tailLines" => (
            "integer",
            "If set, the number of lines from the end of the logs to show.",
        ),
        "timestamps" => (
            "boolean",
            "If true, add an RFC3339 timestamp at the beginning of every line.",
        ),
        "command" => (
            "string",
            "Command is the remote command to execute; argv array.",
        ),
        "stderr" => (
            "boolean",
            "Redirect the standard error stream of the pod for this call.",
        ),
        "stdin" => (
            "boolean",
            "Redirect the standard input stream of the pod for this call.",
        ),
        "stdout" => (
            "boolean",
            "Redirect the standard output stream of the pod for this call.",
        ),
        "tty" => (
            "boolean",
            "TTY if true indicates that a tty will be allocated for the call.",
        ),
        "ports" => ("integer", "List of ports to forward."),
        "path" => (
            "string",
            "Path is the URL path to use for the proxy request.",
        ),
        _ => ("string", ""),
    }
}

/// A query or path parameter.
#[derive(Debug, Clone)]
struct Param {
    name: &'static str,
    location: &'static str,
}

impl Param {
    fn query(name: &'static str) -> Param {
        Param {
            name,
            location: "query",
        }
    }

    fn path(name: &'static str) -> Param {
        Param {
            name,
            location: "path",
        }
    }

    fn base(&self) -> (Map<String, Value>, &'static str) {
        let (ty, description) = param_facts(self.name);
        let mut out = Map::new();
        out.insert("name".into(), self.name.into());
        out.insert("in".into(), self.location.into());
        out.insert("description".into(), description.into());
        if self.location == "path" {
            out.insert("required".into(), true.into());
        }
        (out, ty)
    }

    fn to_v3(&self) -> Value {
        let (mut out, ty) = self.base();
        out.insert("schema".into(), json!({"type": ty, "uniqueItems": true}));
        Value::Object(out)
    }

    fn to_v2(&self) -> Value {
        let (mut out, ty) = self.base();
        out.insert("type".into(), ty.into());
        out.insert("uniqueItems".into(), true.into());
        Value::Object(out)
    }
}

/// One HTTP operation of a path.
#[derive(Debug, Clone)]
struct Operation {
    method: &'static str,
    action: &'static str,
    operation_id: String,
    description: String,
    gvk: Option<Gvk>,
    params: Vec<Param>,
    body: Option<Body>,
    response: Body,
    produces: Produces,
}

impl Operation {
    fn success_codes(&self) -> &'static [&'static str] {
        match self.method {
            "post" => &["200", "201", "202"],
            "put" | "patch" => &["200", "201"],
            "delete" => &["200", "202"],
            _ => &["200"],
        }
    }

    fn tag_and_extensions(&self, names_tag: &str, out: &mut Map<String, Value>) {
        out.insert("tags".into(), json!([names_tag]));
        out.insert("description".into(), self.description.clone().into());
        out.insert("operationId".into(), self.operation_id.clone().into());
        out.insert("x-kubernetes-action".into(), self.action.into());
        if let Some(gvk) = &self.gvk {
            out.insert(EXT_GVK.into(), gvk.to_json());
        }
    }

    fn to_v3(&self, tag: &str, referenced: &mut BTreeSet<String>) -> Value {
        let mut out = Map::new();
        self.tag_and_extensions(tag, &mut out);
        if !self.params.is_empty() {
            let params = self.params.iter().map(Param::to_v3).collect();
            out.insert("parameters".into(), Value::Array(params));
        }
        if let Some(body) = &self.body {
            let schema = body.schema(COMPONENTS_PREFIX, referenced);
            let media: &[&str] = match body {
                Body::Patch => PATCH_MEDIA_TYPES,
                _ => &["*/*"],
            };
            let content: Map<String, Value> = media
                .iter()
                .map(|m| ((*m).to_owned(), json!({"schema": schema})))
                .collect();
            out.insert(
                "requestBody".into(),
                json!({"content": content, "required": true}),
            );
        }
        let schema = self.response.schema(COMPONENTS_PREFIX, referenced);
        let content: Map<String, Value> = self
            .produces
            .media_types()
            .iter()
            .map(|m| ((*m).to_owned(), json!({"schema": schema})))
            .collect();
        let mut responses = Map::new();
        for code in self.success_codes() {
            responses.insert(
                (*code).to_owned(),
                json!({"description": status_text(code), "content": content}),
            );
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        out.insert("responses".into(), Value::Object(responses));
        Value::Object(out)
    }

    fn to_v2(&self, tag: &str, referenced: &mut BTreeSet<String>) -> Value {
        let mut out = Map::new();
        self.tag_and_extensions(tag, &mut out);
        let consumes: &[&str] = match &self.body {
            Some(Body::Patch) => PATCH_MEDIA_TYPES,
            _ => &["*/*"],
        };
        out.insert("consumes".into(), json!(consumes));
        out.insert("produces".into(), json!(self.produces.media_types()));
        out.insert("schemes".into(), json!(["https"]));
        let mut params: Vec<Value> = Vec::new();
        if let Some(body) = &self.body {
            params.push(json!({
                "name": "body",
                "in": "body",
                "required": true,
                "schema": body.schema(SWAGGER2_PREFIX, referenced),
            }));
        }
        params.extend(self.params.iter().map(Param::to_v2));
        if !params.is_empty() {
            out.insert("parameters".into(), Value::Array(params));
        }
        let schema = self.response.schema(SWAGGER2_PREFIX, referenced);
        let mut responses = Map::new();
        for code in self.success_codes() {
            responses.insert(
                (*code).to_owned(),
                json!({"description": status_text(code), "schema": schema}),
            );
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        out.insert("responses".into(), Value::Object(responses));
        Value::Object(out)
    }
}

fn status_text(code: &str) -> &'static str {
    match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    }
}

/// A path with its common parameters and operations.
#[derive(Debug, Clone)]
struct PathItem {
    path: String,
    tag: String,
    params: Vec<Param>,
    operations: Vec<Operation>,
}

impl PathItem {
    fn new(path: &str, tag: &str, params: &[Param]) -> PathItem {
        PathItem {
            path: path.to_owned(),
            tag: tag.to_owned(),
            params: params.to_vec(),
            operations: Vec::new(),
        }
    }

    fn common_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().chain(std::iter::once(&PRETTY))
    }

    fn to_v3(&self, referenced: &mut BTreeSet<String>) -> Value {
        let mut out = Map::new();
        for op in &self.operations {
            out.insert(op.method.into(), op.to_v3(&self.tag, referenced));
        }
        let params = self.common_params().map(Param::to_v3).collect();
        out.insert("parameters".into(), Value::Array(params));
        Value::Object(out)
    }

    fn to_v2(&self, referenced: &mut BTreeSet<String>) -> Value {
        let mut out = Map::new();
        for op in &self.operations {
            out.insert(op.method.into(), op.to_v2(&self.tag, referenced));
        }
        let params = self.common_params().map(Param::to_v2).collect();
        out.insert("parameters".into(), Value::Array(params));
        Value::Object(out)
    }
}

static PRETTY: Param = Param {
    name: "pretty",
    location: "query",
};

/// Calls `f` with the definition name of every `$ref` under `value`.
fn collect_refs(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref"
                    && let Some(target) = child
                        .as_str()
                        .and_then(|r| r.strip_prefix(COMPONENTS_PREFIX))
                {
                    f(target);
                } else {
                    collect_refs(child, f);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, f)),
        _ => {}
    }
}

/// Converts an OpenAPI 3 schema to Swagger 2: refs point into `#/definitions/`, and a
/// single-`$ref` `allOf` becomes a `$ref` with the siblings (description…) kept, as upstream's
/// Swagger 2 document has them.
fn to_swagger2(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in map {
                if key == "$ref" {
                    out.insert(key.clone(), swagger2_ref(child));
                } else if key == "allOf"
                    && let Some([only]) = child.as_array().map(Vec::as_slice)
                    && let Some(only) = only.as_object()
                    && only.len() == 1
                    && let Some(reference) = only.get("$ref")
                {
                    out.insert("$ref".into(), swagger2_ref(reference));
                } else {
                    out.insert(key.clone(), to_swagger2(child));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_swagger2).collect()),
        other => other.clone(),
    }
}

fn swagger2_ref(reference: &Value) -> Value {
    match reference
        .as_str()
        .and_then(|r| r.strip_prefix(COMPONENTS_PREFIX))
    {
        Some(target) => Value::String(format!("{SWAGGER2_PREFIX}{target}")),
        None => reference.clone(),
    }
}
