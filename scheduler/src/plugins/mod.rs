//! The in-tree plugins, one module each, and what several of them share: toleration matching
//! and compiled node selectors (`nodeSelector`, node affinity terms).

pub mod default_binder;
pub mod default_preemption;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_ready;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod queue_sort;
pub mod taint_toleration;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};
use rkube_machinery::selector::{LabelSelector, Operator, Requirement};

use crate::cache::NodeInfo;
use crate::framework::Plugin;
use crate::framework::registry::{Factory, Registry};

/// Registers every in-tree plugin.
pub fn register_in_tree(reg: &mut Registry) {
    fn simple<P: Plugin + Default + 'static>() -> Factory {
        Arc::new(|_, _| Ok(Arc::new(P::default()) as Arc<dyn Plugin>))
    }
    reg.register(queue_sort::NAME, simple::<queue_sort::PrioritySort>());
    reg.register(
        node_unschedulable::NAME,
        simple::<node_unschedulable::NodeUnschedulable>(),
    );
    reg.register(node_name::NAME, simple::<node_name::NodeName>());
    reg.register(
        taint_toleration::NAME,
        simple::<taint_toleration::TaintToleration>(),
    );
    reg.register(node_ready::NAME, simple::<node_ready::NodeReady>());
    reg.register(node_affinity::NAME, Arc::new(node_affinity::factory));
    reg.register(node_ports::NAME, simple::<node_ports::NodePorts>());
    reg.register(
        node_resources_fit::NAME,
        Arc::new(node_resources_fit::factory),
    );
    reg.register(
        inter_pod_affinity::NAME,
        Arc::new(inter_pod_affinity::factory),
    );
    reg.register(
        pod_topology_spread::NAME,
        Arc::new(pod_topology_spread::factory),
    );
    reg.register(
        image_locality::NAME,
        simple::<image_locality::ImageLocality>(),
    );
    reg.register(
        default_preemption::NAME,
        Arc::new(default_preemption::factory),
    );
    reg.register(default_binder::NAME, Arc::new(default_binder::factory));
}

/// Whether a toleration tolerates a taint (Kubernetes' `ToleratesTaint`): the effect matches
/// (or the toleration has none), the key matches (or is empty with `Exists`), and the value
/// matches for `Equal`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The first taint whose effect passes `effect` and that no toleration tolerates.
pub fn find_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effect: impl Fn(&str) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effect(&t.effect))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// The message for an untolerated taint: `node(s) had untolerated taint {key: value}`.
pub fn untolerated_taint_reason(taint: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    )
}

/// One node selector term compiled: its label requirements and `metadata.name` field
/// requirements, all of which must hold. An empty or invalid term matches no node.
#[derive(Clone, Debug)]
pub struct CompiledTerm {
    labels: Option<LabelSelector>,
    names: Vec<(bool, Vec<String>)>,
}

fn node_requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let op = match r.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    };
    Requirement::new(r.key.clone(), op, r.values.clone().unwrap_or_default()).ok()
}

impl CompiledTerm {
    /// Compiles a term.
    pub fn new(term: &NodeSelectorTerm) -> Self {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        let invalid = CompiledTerm {
            labels: None,
            names: Vec::new(),
        };
        if exprs.is_empty() && fields.is_empty() {
            return invalid;
        }
        let mut reqs = Vec::new();
        for e in exprs {
            match node_requirement(e) {
                Some(r) => reqs.push(r),
                None => return invalid,
            }
        }
        let mut names = Vec::new();
        for f in fields {
            let values = f.values.clone().unwrap_or_default();
            match (f.key.as_str(), f.operator.as_str(), values.len()) {
                ("metadata.name", "In", 1) => names.push((true, values)),
                ("metadata.name", "NotIn", 1) => names.push((false, values)),
                _ => return invalid,
            }
        }
        CompiledTerm {
            labels: Some(LabelSelector::from_requirements(reqs)),
            names,
        }
    }

    /// Whether a node matches.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        let Some(labels) = &self.labels else {
            return false;
        };
        labels.matches(&node.labels)
            && self
                .names
                .iter()
                .all(|(is_in, values)| values.contains(&node.name) == *is_in)
    }
}

/// What a pod requires of a node's labels: `spec.nodeSelector` and the required node affinity
/// terms (ORed), both of which must match.
#[derive(Clone, Debug, Default)]
pub struct RequiredNodeAffinity {
    selector: Option<LabelSelector>,
    terms: Option<Vec<CompiledTerm>>,
}

impl RequiredNodeAffinity {
    /// Compiles a pod's requirements.
    pub fn of(spec: &k8s_openapi::api::core::v1::PodSpec) -> Self {
        let selector = spec
            .node_selector
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| LabelSelector::from_map(m).unwrap_or_else(|_| LabelSelector::nothing()));
        let terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|ns| {
                ns.node_selector_terms
                    .iter()
                    .map(CompiledTerm::new)
                    .collect()
            });
        RequiredNodeAffinity { selector, terms }
    }

    /// Whether there is anything to check.
    pub fn is_empty(&self) -> bool {
        self.selector.is_none() && self.terms.is_none()
    }

    /// Whether a node matches.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        if let Some(s) = &self.selector
            && !s.matches(&node.labels)
        {
            return false;
        }
        match &self.terms {
            Some(terms) => terms.iter().any(|t| t.matches(node)),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::node;

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            ..Default::default()
        }
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn toleration_matching_table() {
        let t = taint("k", Some("v"), "NoSchedule");
        let cases = [
            (
                tol(Some("k"), None, Some("v"), None),
                true,
                "Equal by default, any effect",
            ),
            (
                tol(Some("k"), Some("Equal"), Some("x"), None),
                false,
                "value differs",
            ),
            (
                tol(Some("k"), Some("Exists"), None, Some("NoSchedule")),
                true,
                "Exists",
            ),
            (
                tol(Some("k"), Some("Exists"), None, Some("NoExecute")),
                false,
                "effect differs",
            ),
            (
                tol(None, Some("Exists"), None, None),
                true,
                "empty key with Exists tolerates all",
            ),
            (
                tol(Some("j"), Some("Exists"), None, None),
                false,
                "key differs",
            ),
            (
                tol(Some("k"), Some("Bogus"), Some("v"), None),
                false,
                "unknown operator",
            ),
        ];
        for (t_, want, name) in cases {
            assert_eq!(tolerates(&t_, &t), want, "{name}");
        }
        let empty_value = taint("node.kubernetes.io/unreachable", None, "NoExecute");
        assert!(tolerates(
            &tol(
                Some("node.kubernetes.io/unreachable"),
                Some("Equal"),
                None,
                None
            ),
            &empty_value
        ));
        assert_eq!(
            untolerated_taint_reason(&empty_value),
            "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
        );
    }

    #[test]
    fn node_selector_terms() {
        let mut n = node("n1", "1", "1Gi");
        n.metadata.labels = Some(
            [("zone", "a"), ("gen", "5")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let info = NodeInfo::new(Arc::new(n));
        let req = |key: &str, op: &str, values: &[&str]| NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let term = |exprs: Vec<NodeSelectorRequirement>, fields: Vec<NodeSelectorRequirement>| {
            CompiledTerm::new(&NodeSelectorTerm {
                match_expressions: Some(exprs),
                match_fields: Some(fields),
            })
        };
        let cases = [
            (term(vec![req("zone", "In", &["a", "b"])], vec![]), true),
            (term(vec![req("zone", "NotIn", &["a"])], vec![]), false),
            (term(vec![req("gen", "Gt", &["4"])], vec![]), true),
            (term(vec![req("gen", "Lt", &["4"])], vec![]), false),
            (term(vec![req("gpu", "DoesNotExist", &[])], vec![]), true),
            (term(vec![req("zone", "Exists", &[])], vec![]), true),
            (
                term(vec![], vec![req("metadata.name", "In", &["n1"])]),
                true,
            ),
            (
                term(vec![], vec![req("metadata.name", "NotIn", &["n1"])]),
                false,
            ),
            (term(vec![], vec![]), false),
            (term(vec![req("zone", "Bogus", &["a"])], vec![]), false),
        ];
        for (i, (t, want)) in cases.iter().enumerate() {
            assert_eq!(t.matches(&info), *want, "case {i}");
        }
    }
}
