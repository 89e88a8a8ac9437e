//! Kubernetes 1.33 facts the generated schemas lack: patch strategies and merge keys
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`) and list/map topologies
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).
//!
//! Compiled from the `patchStrategy`/`patchMergeKey` struct tags and the `+listType`,
//! `+listMapKey`, `+mapType` and `+structType` markers of the upstream API types
//! (k8s.io/api and k8s.io/apimachinery v0.33.0), for every definition of the built-in registry;
//! fields of embedded structs (e.g. `VolumeSource` in `Volume`) are listed under the embedding
//! definition, where they appear in the schema.

use serde_json::{Map, Value};

use super::{
    EXT_LIST_MAP_KEYS, EXT_LIST_TYPE, EXT_MAP_TYPE, EXT_PATCH_MERGE_KEY, EXT_PATCH_STRATEGY,
};

/// The extensions of one property of a definition (or of the definition itself when `field`
/// is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact {
    /// Definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// Property name; empty for the definition itself.
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy`.
    pub patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type`.
    pub map_type: Option<&'static str>,
}

impl Fact {
    const fn new(definition: &'static str, field: &'static str) -> Fact {
        Fact {
            definition,
            field,
            patch_strategy: None,
            merge_key: None,
            list_type: None,
            list_map_keys: &[],
            map_type: None,
        }
    }

    /// Patch strategy `strategy` without a merge key.
    const fn strategy(mut self, strategy: &'static str) -> Fact {
        self.patch_strategy = Some(strategy);
        self
    }

    /// Patch strategy `strategy` with merge key `key`.
    const fn keyed(mut self, strategy: &'static str, key: &'static str) -> Fact {
        self.patch_strategy = Some(strategy);
        self.merge_key = Some(key);
        self
    }

    const fn atomic_list(mut self) -> Fact {
        self.list_type = Some("atomic");
        self
    }

    const fn set_list(mut self) -> Fact {
        self.list_type = Some("set");
        self
    }

    const fn map_list(mut self, keys: &'static [&'static str]) -> Fact {
        self.list_type = Some("map");
        self.list_map_keys = keys;
        self
    }

    const fn map_type(mut self, map_type: &'static str) -> Fact {
        self.map_type = Some(map_type);
        self
    }

    /// The extensions this fact adds, as JSON.
    pub fn extensions(&self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut put = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                out.insert(name.to_owned(), Value::String(value.to_owned()));
            }
        };
        put(EXT_PATCH_STRATEGY, self.patch_strategy);
        put(EXT_PATCH_MERGE_KEY, self.merge_key);
        put(EXT_LIST_TYPE, self.list_type);
        put(EXT_MAP_TYPE, self.map_type);
        if !self.list_map_keys.is_empty() {
            let keys = self
                .list_map_keys
                .iter()
                .map(|k| Value::String((*k).to_owned()));
            out.insert(EXT_LIST_MAP_KEYS.to_owned(), Value::Array(keys.collect()));
        }
        out
    }
}

/// Adds the extensions of [`FACTS`] to the definitions they name. Facts about definitions or
/// properties that are absent are skipped (the unit tests check that none are).
pub(super) fn apply(definitions: &mut Map<String, Value>) {
    for fact in FACTS {
        let Some(Value::Object(schema)) = definitions.get_mut(fact.definition) else {
            continue;
        };
        let target = if fact.field.is_empty() {
            Some(schema)
        } else {
            schema
                .get_mut("properties")
                .and_then(|props| props.get_mut(fact.field))
                .and_then(Value::as_object_mut)
        };
        if let Some(target) = target {
            target.extend(fact.extensions());
        }
    }
}

/// The facts, by definition (one per line).
#[rustfmt::skip]
pub const FACTS: &[Fact] = &[
    Fact::new("io.k8s.api.apps.v1.DaemonSetStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.apps.v1.DeploymentSpec", "strategy").strategy("retainKeys"),
    Fact::new("io.k8s.api.apps.v1.DeploymentStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.apps.v1.StatefulSetSpec", "volumeClaimTemplates").atomic_list(),
    Fact::new("io.k8s.api.apps.v1.StatefulSetStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.batch.v1.JobStatus", "conditions").keyed("merge", "type").atomic_list(),
    Fact::new("io.k8s.api.batch.v1.PodFailurePolicy", "rules").atomic_list(),
    Fact::new("io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement", "values").set_list(),
    Fact::new("io.k8s.api.batch.v1.PodFailurePolicyRule", "onPodConditions").atomic_list(),
    Fact::new("io.k8s.api.batch.v1.SuccessPolicy", "rules").atomic_list(),
    Fact::new("io.k8s.api.batch.v1.UncountedTerminatedPods", "failed").set_list(),
    Fact::new("io.k8s.api.batch.v1.UncountedTerminatedPods", "succeeded").set_list(),
    Fact::new("io.k8s.api.core.v1.Capabilities", "add").atomic_list(),
    Fact::new("io.k8s.api.core.v1.Capabilities", "drop").atomic_list(),
    Fact::new("io.k8s.api.core.v1.CephFSPersistentVolumeSource", "monitors").atomic_list(),
    Fact::new("io.k8s.api.core.v1.CephFSVolumeSource", "monitors").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ConfigMapKeySelector", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.ConfigMapProjection", "items").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ConfigMapVolumeSource", "items").atomic_list(),
    Fact::new("io.k8s.api.core.v1.Container", "args").atomic_list(),
    Fact::new("io.k8s.api.core.v1.Container", "command").atomic_list(),
    Fact::new("io.k8s.api.core.v1.Container", "env").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.Container", "envFrom").atomic_list(),
    Fact::new("io.k8s.api.core.v1.Container", "ports").keyed("merge", "containerPort").map_list(&["containerPort", "protocol"]),
    Fact::new("io.k8s.api.core.v1.Container", "resizePolicy").atomic_list(),
    Fact::new("io.k8s.api.core.v1.Container", "volumeDevices").keyed("merge", "devicePath").map_list(&["devicePath"]),
    Fact::new("io.k8s.api.core.v1.Container", "volumeMounts").keyed("merge", "mountPath").map_list(&["mountPath"]),
    Fact::new("io.k8s.api.core.v1.ContainerImage", "names").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.ContainerStatus", "volumeMounts").keyed("merge", "mountPath").map_list(&["mountPath"]),
    Fact::new("io.k8s.api.core.v1.DownwardAPIProjection", "items").atomic_list(),
    Fact::new("io.k8s.api.core.v1.DownwardAPIVolumeSource", "items").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EndpointAddress", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.EndpointPort", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.EndpointSubset", "addresses").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EndpointSubset", "notReadyAddresses").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EndpointSubset", "ports").atomic_list(),
    Fact::new("io.k8s.api.core.v1.Endpoints", "subsets").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "args").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "command").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "env").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "envFrom").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "ports").keyed("merge", "containerPort").map_list(&["containerPort", "protocol"]),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "resizePolicy").atomic_list(),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices").keyed("merge", "devicePath").map_list(&["devicePath"]),
    Fact::new("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts").keyed("merge", "mountPath").map_list(&["mountPath"]),
    Fact::new("io.k8s.api.core.v1.ExecAction", "command").atomic_list(),
    Fact::new("io.k8s.api.core.v1.FCVolumeSource", "targetWWNs").atomic_list(),
    Fact::new("io.k8s.api.core.v1.FCVolumeSource", "wwids").atomic_list(),
    Fact::new("io.k8s.api.core.v1.HTTPGetAction", "httpHeaders").atomic_list(),
    Fact::new("io.k8s.api.core.v1.HostAlias", "hostnames").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ISCSIPersistentVolumeSource", "portals").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ISCSIVolumeSource", "portals").atomic_list(),
    Fact::new("io.k8s.api.core.v1.LinuxContainerUser", "supplementalGroups").atomic_list(),
    Fact::new("io.k8s.api.core.v1.LoadBalancerIngress", "ports").atomic_list(),
    Fact::new("io.k8s.api.core.v1.LoadBalancerStatus", "ingress").atomic_list(),
    Fact::new("io.k8s.api.core.v1.LocalObjectReference", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.NamespaceSpec", "finalizers").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NamespaceStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.core.v1.NodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeSelector", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.NodeSelector", "nodeSelectorTerms").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeSelectorRequirement", "values").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeSelectorTerm", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.NodeSelectorTerm", "matchExpressions").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeSelectorTerm", "matchFields").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeSpec", "podCIDRs").strategy("merge").set_list(),
    Fact::new("io.k8s.api.core.v1.NodeSpec", "taints").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeStatus", "addresses").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.core.v1.NodeStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.core.v1.NodeStatus", "images").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeStatus", "runtimeHandlers").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeStatus", "volumesAttached").atomic_list(),
    Fact::new("io.k8s.api.core.v1.NodeStatus", "volumesInUse").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ObjectFieldSelector", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.ObjectReference", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "accessModes").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "accessModes").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "allocatedResourceStatuses").map_type("granular"),
    Fact::new("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.core.v1.PersistentVolumeSpec", "accessModes").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PersistentVolumeSpec", "claimRef").map_type("granular"),
    Fact::new("io.k8s.api.core.v1.PersistentVolumeSpec", "mountOptions").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodAffinity", "preferredDuringSchedulingIgnoredDuringExecution").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodAffinity", "requiredDuringSchedulingIgnoredDuringExecution").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodAffinityTerm", "matchLabelKeys").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodAffinityTerm", "mismatchLabelKeys").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodAffinityTerm", "namespaces").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodDNSConfig", "nameservers").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodDNSConfig", "options").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodDNSConfig", "searches").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodSecurityContext", "supplementalGroups").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodSecurityContext", "sysctls").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodSpec", "containers").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "ephemeralContainers").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "hostAliases").keyed("merge", "ip").map_list(&["ip"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "imagePullSecrets").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "initContainers").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "nodeSelector").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.PodSpec", "readinessGates").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodSpec", "resourceClaims").keyed("merge,retainKeys", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "schedulingGates").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "tolerations").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints").keyed("merge", "topologyKey").map_list(&["topologyKey", "whenUnsatisfiable"]),
    Fact::new("io.k8s.api.core.v1.PodSpec", "volumes").keyed("merge,retainKeys", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.PodStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.core.v1.PodStatus", "containerStatuses").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodStatus", "ephemeralContainerStatuses").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodStatus", "hostIPs").keyed("merge", "ip").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodStatus", "initContainerStatuses").atomic_list(),
    Fact::new("io.k8s.api.core.v1.PodStatus", "podIPs").keyed("merge", "ip").map_list(&["ip"]),
    Fact::new("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses").keyed("merge,retainKeys", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.ProjectedVolumeSource", "sources").atomic_list(),
    Fact::new("io.k8s.api.core.v1.RBDPersistentVolumeSource", "monitors").atomic_list(),
    Fact::new("io.k8s.api.core.v1.RBDVolumeSource", "monitors").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ResourceFieldSelector", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.ResourceRequirements", "claims").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.ResourceStatus", "resources").map_list(&["resourceID"]),
    Fact::new("io.k8s.api.core.v1.SecretKeySelector", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.SecretProjection", "items").atomic_list(),
    Fact::new("io.k8s.api.core.v1.SecretReference", "").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.SecretVolumeSource", "items").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ServiceAccount", "imagePullSecrets").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ServiceAccount", "secrets").keyed("merge", "name").map_list(&["name"]),
    Fact::new("io.k8s.api.core.v1.ServiceSpec", "clusterIPs").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ServiceSpec", "externalIPs").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ServiceSpec", "ipFamilies").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ServiceSpec", "loadBalancerSourceRanges").atomic_list(),
    Fact::new("io.k8s.api.core.v1.ServiceSpec", "ports").keyed("merge", "port").map_list(&["port", "protocol"]),
    Fact::new("io.k8s.api.core.v1.ServiceSpec", "selector").map_type("atomic"),
    Fact::new("io.k8s.api.core.v1.ServiceStatus", "conditions").keyed("merge", "type").map_list(&["type"]),
    Fact::new("io.k8s.api.core.v1.TopologySpreadConstraint", "matchLabelKeys").atomic_list(),
    Fact::new("io.k8s.api.core.v1.TypedLocalObjectReference", "").map_type("atomic"),
    Fact::new("io.k8s.api.discovery.v1.Endpoint", "addresses").set_list(),
    Fact::new("io.k8s.api.discovery.v1.EndpointHints", "forNodes").atomic_list(),
    Fact::new("io.k8s.api.discovery.v1.EndpointHints", "forZones").atomic_list(),
    Fact::new("io.k8s.api.discovery.v1.EndpointPort", "").map_type("atomic"),
    Fact::new("io.k8s.api.discovery.v1.EndpointSlice", "endpoints").atomic_list(),
    Fact::new("io.k8s.api.discovery.v1.EndpointSlice", "ports").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup", "serverAddressByClientCIDRs").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup", "versions").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList", "groups").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIResource", "categories").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIResource", "shortNames").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList", "resources").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions", "serverAddressByClientCIDRs").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions", "versions").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "dryRun").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector", "").map_type("atomic"),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector", "matchExpressions").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement", "values").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers").strategy("merge").set_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "managedFields").atomic_list(),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences").keyed("merge", "uid").map_list(&["uid"]),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference", "").map_type("atomic"),
    Fact::new("io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails", "causes").atomic_list(),
];
