//! Node IPAM: gives every Node a distinct `spec.podCIDR` (and `spec.podCIDRs`) from
//! `--cluster-cidr`, each a /`--node-cidr-mask-size` subnet ([`cidrset`]). The subnets nodes
//! already have are marked used first; a deleted node's subnet is freed. Reconciles run one at
//! a time, so no subnet is handed out twice; the write is a merge patch carrying the node's
//! resourceVersion.

pub mod cidrset;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client};

use crate::Shared;
use crate::events::Recorder;
use crate::informer::Change;
use crate::runner::{Wiring, is_conflict, is_not_found};
use cidrset::CidrSet;

/// The controller's name.
pub const NAME: &str = "node-ipam-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "node-controller";
/// How many times a write that conflicts with another is retried on a fresh read.
const CIDR_UPDATE_RETRIES: u32 = 3;

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The subnets.
    pub cidrs: Mutex<CidrSet>,
    /// Events.
    pub recorder: Recorder,
}

/// Why a node could not get a CIDR.
#[derive(Debug, thiserror::Error)]
#[error("node {node}: assigning {cidr}: {source}")]
pub struct Error {
    node: String,
    cidr: String,
    #[source]
    source: kube::Error,
}

fn pod_cidr(node: &Node) -> Option<ipnet::Ipv4Net> {
    node.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()
}

/// Keeps the set in step with the nodes the informer sees.
pub fn observe(ctx: &Ctx, change: &Change<Node>) {
    let mut set = ctx.cidrs.lock().expect("cidrs");
    match change {
        Change::Deleted(n) => {
            if let Some(c) = pod_cidr(n) {
                let _ = set.release(&c);
            }
        }
        other => {
            if let Some(c) = pod_cidr(other.object())
                && let Err(e) = set.occupy(&c)
            {
                tracing::warn!(node = ?other.object().metadata.name, error = %e, "node podCIDR outside the cluster CIDR");
            }
        }
    }
}

/// Assigns a CIDR to a node without one.
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pod_cidr(&node).is_some() || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let cidr = match ctx.cidrs.lock().expect("cidrs").allocate() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(node = %name, error = %e, "no pod CIDR left");
            ctx.recorder.normal(
                &*node,
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut resource_version = node.metadata.resource_version.clone();
    let mut conflicts = 0;
    let failed = loop {
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": resource_version},
            "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]},
        });
        let e = match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %name, cidr = %cidr, "assigned pod CIDR");
                return Ok(Action::await_change());
            }
            Err(e) => e,
        };
        // A node is written to often right after it registers (its kubelet reports its
        // status): on a conflict, read it again and retry with the same subnet, as
        // Kubernetes' allocator does (cidrUpdateRetries), rather than give the subnet up.
        if !is_conflict(&e) || conflicts == CIDR_UPDATE_RETRIES {
            break e;
        }
        conflicts += 1;
        match api.get_opt(&name).await {
            Ok(Some(fresh))
                if pod_cidr(&fresh).is_none() && fresh.metadata.deletion_timestamp.is_none() =>
            {
                resource_version = fresh.metadata.resource_version;
            }
            // Gone, being deleted, or given a CIDR meanwhile: ours is not needed.
            Ok(_) => {
                let _ = ctx.cidrs.lock().expect("cidrs").release(&cidr);
                return Ok(Action::await_change());
            }
            Err(e) => break e,
        }
    };
    let _ = ctx.cidrs.lock().expect("cidrs").release(&cidr);
    if is_not_found(&failed) {
        return Ok(Action::await_change());
    }
    ctx.recorder.warning(
        &*node,
        "CIDRAssignmentFailed",
        format!("Node {name} failed to update podCIDR: {failed}"),
    );
    Err(Error {
        node: name,
        cidr: cidr.to_string(),
        source: failed,
    })
}

/// Builds the controller (one reconcile at a time).
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let Some(cluster) = shared.config.cluster_cidr else {
        return Box::pin(async {});
    };
    let nodes = shared.informers.all::<Node>();
    let wiring = Wiring::new(NAME, &shared.metrics, &nodes);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        cidrs: Mutex::new(CidrSet::new(cluster, shared.config.node_cidr_mask_size)),
        recorder: shared.recorder.with_component("cidrAllocator"),
    });
    let observer = ctx.clone();
    // Record used subnets before the node's own trigger reaches the controller.
    let trigger = nodes.subscribe().map(move |c| {
        observe(&observer, &c);
        c.object().clone()
    });
    let controller = wiring.controller_on(trigger);
    Box::pin(wiring.run(controller, 1, ctx, reconcile, shared.shutdown()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeApi;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::NodeSpec {
                pod_cidr: cidr.map(String::from),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[tokio::test]
    async fn nodes_get_distinct_cidrs_around_those_taken() {
        let fake = FakeApi::new();
        let (recorder, events) = Recorder::memory(NAME);
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            cidrs: Mutex::new(CidrSet::new("10.244.0.0/16".parse().unwrap(), 24)),
            recorder,
        });
        let existing = node("old", Some("10.244.0.0/24"));
        observe(&ctx, &Change::Added(Arc::new(existing)));
        for n in ["a", "b"] {
            fake.insert("v1/nodes", &node(n, None));
        }
        for n in ["a", "b"] {
            let stored: Node = fake.get("v1/nodes", "", n).unwrap();
            reconcile(Arc::new(stored), ctx.clone()).await.unwrap();
        }
        let a: Node = fake.get("v1/nodes", "", "a").unwrap();
        let b: Node = fake.get("v1/nodes", "", "b").unwrap();
        assert_eq!(
            a.spec.as_ref().unwrap().pod_cidr.as_deref(),
            Some("10.244.1.0/24")
        );
        assert_eq!(
            b.spec.as_ref().unwrap().pod_cidr.as_deref(),
            Some("10.244.2.0/24")
        );
        assert_eq!(
            b.spec.as_ref().unwrap().pod_cidrs.as_deref(),
            Some(&["10.244.2.0/24".to_string()][..])
        );
        // A node that already has one is left alone.
        fake.clear_requests();
        reconcile(Arc::new(a), ctx.clone()).await.unwrap();
        assert!(fake.requests().is_empty());
        // A node changed since the informer saw it (its kubelet wrote its status): the same
        // subnet is written on a fresh read, with no failure event.
        fake.insert("v1/nodes", &node("d", None));
        let stale: Node = fake.get("v1/nodes", "", "d").unwrap();
        let mut newer = stale.clone();
        newer.metadata.labels = Some([("ready".to_string(), "yes".to_string())].into());
        fake.insert("v1/nodes", &newer);
        reconcile(Arc::new(stale), ctx.clone()).await.unwrap();
        let d: Node = fake.get("v1/nodes", "", "d").unwrap();
        assert_eq!(
            d.spec.as_ref().unwrap().pod_cidr.as_deref(),
            Some("10.244.3.0/24")
        );
        assert_eq!(d.metadata.labels.unwrap()["ready"], "yes");
        assert!(
            events
                .lock()
                .unwrap()
                .iter()
                .all(|e| e.reason != "CIDRAssignmentFailed"),
            "{:?}",
            events.lock().unwrap()
        );
        assert_eq!(fake.count("PATCH", "/nodes/d"), 2);

        // Exhaustion is reported as Kubernetes does.
        let tiny = Arc::new(Ctx {
            client: fake.client(),
            cidrs: Mutex::new(CidrSet::new("10.0.0.0/24".parse().unwrap(), 24)),
            recorder: ctx.recorder.clone(),
        });
        observe(
            &tiny,
            &Change::Added(Arc::new(node("x", Some("10.0.0.0/24")))),
        );
        fake.insert("v1/nodes", &node("c", None));
        let c: Node = fake.get("v1/nodes", "", "c").unwrap();
        reconcile(Arc::new(c), tiny).await.unwrap();
        assert_eq!(
            events.lock().unwrap().last().unwrap().reason,
            "CIDRNotAvailable"
        );
    }
}
