//! API discovery: `/api`, `/apis`, `/apis/<group>`, `/api/v1`, `/apis/<group>/<version>`
//! (legacy discovery), the aggregated discovery documents (`apidiscovery.k8s.io/v2`) that
//! kubectl asks for, and `/version`.

use serde_json::{Value, json};

use crate::resources::{self, ResourceDef};

/// The Kubernetes version we answer to: kubectl picks its binary from `minor`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "gitVersion": "v1.33.0-rkube",
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }),
    })
}

/// What a subresource serves: (name, group, version, kind, verbs).
fn subresource_facts(
    def: &ResourceDef,
    sub: &str,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
) {
    match sub {
        "status" | "approval" => (
            def.group,
            def.version,
            def.kind,
            &["get", "patch", "update"],
        ),
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "binding" => ("", "v1", "Binding", &["create"]),
        "eviction" => ("policy", "v1", "Eviction", &["create"]),
        "log" => ("", "v1", "Pod", &["get"]),
        "exec" => ("", "v1", "PodExecOptions", &["create", "get"]),
        "attach" => ("", "v1", "PodAttachOptions", &["create", "get"]),
        "portforward" => ("", "v1", "PodPortForwardOptions", &["create", "get"]),
        "finalize" => ("", "v1", "Namespace", &["update"]),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        "proxy" => ("", "v1", "NodeProxyOptions", &["get"]),
        _ => (def.group, def.version, def.kind, &["get"]),
    }
}

fn served_in(group: &str, version: &str) -> Vec<&'static ResourceDef> {
    resources::ALL
        .iter()
        .copied()
        .filter(|d| d.group == group && d.version == version)
        .collect()
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str) -> Value {
    json!({
        "name": group,
        "versions": [{"groupVersion": format!("{group}/v1"), "version": "v1"}],
        "preferredVersion": {"groupVersion": format!("{group}/v1"), "version": "v1"},
    })
}

/// `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(group_entry)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`; `None` if not served.
pub fn api_group(group: &str) -> Option<Value> {
    resources::groups().contains(&group).then(|| {
        let mut g = group_entry(group);
        g["kind"] = "APIGroup".into();
        g["apiVersion"] = "v1".into();
        g
    })
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` if not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let defs = served_in(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut resources_out = Vec::new();
    for d in &defs {
        let mut r = json!({
            "name": d.resource,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs(),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources_out.push(r);
        for sub in d.subresources {
            let (g, v, kind, verbs) = subresource_facts(d, sub);
            let mut s = json!({
                "name": format!("{}/{sub}", d.resource),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if g != d.group || v != d.version {
                s["group"] = g.into();
                s["version"] = v.into();
            }
            resources_out.push(s);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources_out,
    }))
}

fn discovery_resource(d: &ResourceDef) -> Value {
    let mut r = json!({
        "resource": d.resource,
        "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": d.singular,
        "verbs": d.verbs(),
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    let subs: Vec<Value> = d
        .subresources
        .iter()
        .map(|sub| {
            let (g, v, kind, verbs) = subresource_facts(d, sub);
            json!({
                "subresource": sub,
                "responseKind": {"group": g, "version": v, "kind": kind},
                "verbs": verbs,
            })
        })
        .collect();
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

/// The aggregated discovery document (`APIGroupDiscoveryList`) of the core group (`legacy`)
/// or of every named group, in `apidiscovery.k8s.io/<version>`.
pub fn aggregated(legacy: bool, api_version: &str) -> Value {
    let groups: Vec<&str> = resources::groups()
        .into_iter()
        .filter(|g| g.is_empty() == legacy)
        .collect();
    let items: Vec<Value> = groups
        .iter()
        .map(|g| {
            let resources: Vec<Value> = served_in(g, "v1")
                .into_iter()
                .map(discovery_resource)
                .collect();
            json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{api_version}"),
        "metadata": {},
        "items": items,
    })
}

/// The aggregated discovery version the client accepts (`v2` or `v2beta1`), if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for item in accept.split(',') {
        if !item.contains("as=APIGroupDiscoveryList") || !item.contains("g=apidiscovery.k8s.io") {
            continue;
        }
        if item.contains("v=v2beta1") {
            return Some("v2beta1");
        }
        if item.contains("v=v2") {
            return Some("v2");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_has_subresources() {
        let l = api_resource_list("", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "pods",
            "pods/status",
            "pods/log",
            "pods/binding",
            "pods/eviction",
            "services",
            "namespaces/finalize",
        ] {
            assert!(names.contains(&n), "{n} missing");
        }
        let scale = api_resource_list("apps", "v1").unwrap()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .cloned()
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert!(api_resource_list("nope", "v1").is_none());
    }

    #[test]
    fn aggregated_discovery_lists_groups() {
        let apis = aggregated(false, "v2");
        let groups: Vec<&str> = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(groups.contains(&"apps"));
        assert!(!groups.contains(&""));
        let core = aggregated(true, "v2");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(
            wants_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2")
        );
        assert_eq!(wants_aggregated("application/json"), None);
    }
}
