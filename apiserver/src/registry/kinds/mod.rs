//! The served kinds and their strategies, one module per kind family.

mod cluster;
mod config;
mod csr;
mod events_view;
mod namespace;
mod networking;
pub mod pod;
mod podspec;
pub mod policy;
pub mod priority;
pub mod quota;
mod rbac;
pub mod sa_admission;
mod service;
pub mod storage;
mod workloads;

use std::sync::Arc;

use k8s_openapi::api::{
    apps, batch, certificates, coordination, core, discovery, networking as networking_v1,
    policy as policy_v1, rbac as rbac_v1, scheduling, storage as storage_v1,
};

use super::store::{KindOps, TypedKind};
use super::{Object, Strategy};
use crate::resources as r;

fn kind<T: Object, S: Strategy<T>>(def: &'static r::ResourceDef, s: S) -> Arc<dyn KindOps> {
    Arc::new(TypedKind::<T, S>::new(def, s))
}

/// Every served kind.
pub fn all() -> Vec<Arc<dyn KindOps>> {
    let mut kinds = vec![
        kind::<core::v1::Namespace, _>(&r::NAMESPACES, namespace::NamespaceStrategy),
        kind::<core::v1::Node, _>(&r::NODES, cluster::NodeStrategy),
        kind::<core::v1::Pod, _>(&r::PODS, pod::PodStrategy),
        kind::<core::v1::Service, _>(&r::SERVICES, service::ServiceStrategy),
        kind::<core::v1::Endpoints, _>(&r::ENDPOINTS, cluster::EndpointsStrategy),
        kind::<core::v1::ConfigMap, _>(&r::CONFIGMAPS, config::ConfigMapStrategy),
        kind::<core::v1::Secret, _>(&r::SECRETS, config::SecretStrategy),
        kind::<core::v1::Event, _>(&r::EVENTS, cluster::EventStrategy),
        kind::<core::v1::ServiceAccount, _>(&r::SERVICEACCOUNTS, config::ServiceAccountStrategy),
        kind::<core::v1::ResourceQuota, _>(&r::RESOURCEQUOTAS, quota::ResourceQuotaStrategy),
        kind::<core::v1::PersistentVolume, _>(
            &r::PERSISTENTVOLUMES,
            cluster::PersistentVolumeStrategy,
        ),
        kind::<core::v1::PersistentVolumeClaim, _>(
            &r::PERSISTENTVOLUMECLAIMS,
            cluster::PersistentVolumeClaimStrategy,
        ),
        kind::<apps::v1::Deployment, _>(&r::DEPLOYMENTS, workloads::DeploymentStrategyImpl),
        kind::<apps::v1::ReplicaSet, _>(&r::REPLICASETS, workloads::ReplicaSetStrategy),
        kind::<apps::v1::DaemonSet, _>(&r::DAEMONSETS, workloads::DaemonSetStrategy),
        kind::<apps::v1::StatefulSet, _>(&r::STATEFULSETS, workloads::StatefulSetStrategy),
        kind::<batch::v1::Job, _>(&r::JOBS, workloads::JobStrategy),
        kind::<batch::v1::CronJob, _>(&r::CRONJOBS, workloads::CronJobStrategy),
        kind::<networking_v1::v1::Ingress, _>(&r::INGRESSES, networking::IngressStrategy),
        kind::<networking_v1::v1::IngressClass, _>(
            &r::INGRESSCLASSES,
            networking::IngressClassStrategy,
        ),
        kind::<networking_v1::v1::NetworkPolicy, _>(
            &r::NETWORKPOLICIES,
            networking::NetworkPolicyStrategy,
        ),
        kind::<storage_v1::v1::StorageClass, _>(&r::STORAGECLASSES, storage::StorageClassStrategy),
        kind::<policy_v1::v1::PodDisruptionBudget, _>(
            &r::PODDISRUPTIONBUDGETS,
            policy::PodDisruptionBudgetStrategy,
        ),
        kind::<coordination::v1::Lease, _>(&r::LEASES, cluster::LeaseStrategy),
        kind::<discovery::v1::EndpointSlice, _>(&r::ENDPOINTSLICES, cluster::EndpointSliceStrategy),
        priority::kind(kind::<scheduling::v1::PriorityClass, _>(
            &r::PRIORITYCLASSES,
            priority::PriorityClassStrategy,
        )),
        kind::<certificates::v1::CertificateSigningRequest, _>(
            &r::CERTIFICATESIGNINGREQUESTS,
            csr::CsrStrategy,
        ),
        kind::<rbac_v1::v1::Role, _>(&r::ROLES, rbac::RoleStrategy),
        kind::<rbac_v1::v1::RoleBinding, _>(&r::ROLEBINDINGS, rbac::RoleBindingStrategy),
        kind::<rbac_v1::v1::ClusterRole, _>(&r::CLUSTERROLES, rbac::ClusterRoleStrategy),
        kind::<rbac_v1::v1::ClusterRoleBinding, _>(
            &r::CLUSTERROLEBINDINGS,
            rbac::ClusterRoleBindingStrategy,
        ),
    ];
    // events.k8s.io/v1 is a view of the core events.
    let core_events = kinds
        .iter()
        .find(|k| std::ptr::eq(k.def(), &r::EVENTS))
        .cloned()
        .expect("core events are served");
    kinds.push(Arc::new(events_view::EventsV1View::new(core_events)));
    kinds
}
