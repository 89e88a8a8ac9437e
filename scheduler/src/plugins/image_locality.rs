//! ImageLocality: nodes that already have the pod's container images score higher, by image
//! size scaled by how widely the image is spread over the cluster (an image on every node
//! gives no advantage), between 23 MB and 1000 MB per container — Kubernetes' formula.

use std::sync::Arc;

use crate::cache::{NodeInfo, Snapshot, normalized_image_name};
use crate::framework::{
    ClusterEvent, CycleState, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin, Status,
};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Scores nodes by the images they already have.
#[derive(Default)]
pub struct ImageLocality;

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd]
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// The score for a sum of scaled image sizes.
pub fn calculate_priority(sum: i64, containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * containers.max(1) as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

/// The pod's images (normalized) with the share of nodes that have each.
#[derive(Clone, Debug, Default)]
pub struct ImageSpread {
    /// Normalized image name and the fraction of nodes holding it, per container.
    pub images: Vec<(String, f64)>,
}

const SPREAD_KEY: &str = "PreScoreImageLocality";

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Status {
        let spec = pod.spec();
        let total = snap.nodes().len().max(1) as f64;
        let mut any = false;
        let images = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| {
                let name = normalized_image_name(c.image.as_deref().unwrap_or_default());
                let n = snap.image_node_count(&name);
                any |= n > 0;
                (name, n as f64 / total)
            })
            .collect();
        if !any {
            // No node has any of the images: every node would score 0.
            return Status::skip();
        }
        state.write(SPREAD_KEY, ImageSpread { images });
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let spread = state
            .read::<ImageSpread>(SPREAD_KEY)
            .ok_or_else(|| Status::error("ImageLocality: PreScore state missing"))?;
        let sum: i64 = spread
            .images
            .iter()
            .filter_map(|(name, fraction)| {
                node.images
                    .get(name)
                    .map(|size| (*size as f64 * fraction) as i64)
            })
            .sum();
        Ok(calculate_priority(sum, spread.images.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod_info};
    use k8s_openapi::api::core::v1::{ContainerImage, Node};

    fn node_with_images(name: &str, images: &[(&str, i64)]) -> Node {
        let mut n = node(name, "1", "1Gi");
        n.status.get_or_insert_with(Default::default).images = Some(
            images
                .iter()
                .map(|(i, s)| ContainerImage {
                    names: Some(vec![i.to_string()]),
                    size_bytes: Some(*s),
                })
                .collect(),
        );
        n
    }

    /// Scores in the order of `nodes` (the snapshot's own order is not the insertion order).
    fn scores(nodes: Vec<Node>, pod: &PodInfo) -> Option<Vec<i64>> {
        let names: Vec<String> = nodes
            .iter()
            .map(|n| n.metadata.name.clone().unwrap_or_default())
            .collect();
        let snap = Snapshot::from_nodes(nodes, vec![]);
        let mut st = CycleState::new();
        if ImageLocality
            .pre_score(&mut st, pod, snap.nodes(), &snap)
            .is_skip()
        {
            return None;
        }
        Some(
            names
                .iter()
                .map(|n| ImageLocality.score(&st, pod, snap.get(n).unwrap()).unwrap())
                .collect(),
        )
    }

    #[test]
    fn bigger_and_rarer_images_score_higher() {
        let p = pod_info("p", "0", "0", |s| {
            s.containers[0].image = Some("app:1".into())
        });
        let got = scores(
            vec![
                node_with_images("a", &[]),
                node_with_images("b", &[("app:1", 10 * MB)]),
                node_with_images("c", &[("app:1", 1000 * MB)]),
                node_with_images("d", &[("other:1", 1000 * MB)]),
            ],
            &p,
        )
        .unwrap();
        // "app:1" is on 2 of 4 nodes: sizes count half.
        assert_eq!(got, [0, 0, 100 * (500 - 23) / (1000 - 23), 0]);
        let untagged = pod_info("q", "0", "0", |s| {
            s.containers[0].image = Some("base".into())
        });
        let got = scores(
            vec![node_with_images("e", &[("base:latest", 1000 * MB)])],
            &untagged,
        );
        assert_eq!(
            got,
            Some(vec![100]),
            "untagged means :latest, on every node"
        );
        assert_eq!(
            scores(vec![node_with_images("f", &[("x:1", MB)])], &p),
            None,
            "skipped when no node has the images"
        );
    }
}
