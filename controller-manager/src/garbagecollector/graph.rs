//! The garbage collector's dependency graph (Kubernetes' GraphBuilder): a node per object seen
//! by the monitors, linked to its owners by their UIDs. Owners referenced before they are seen
//! get "virtual" nodes whose existence the collector verifies. Processing a change updates the
//! graph and says what to look at: dependents of a deleted owner, owners waiting for their
//! dependents (foreground deletion), owners starting an orphaning deletion.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The finalizer of a foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion.
pub const ORPHAN: &str = "orphan";

/// Coordinates of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}, ", self.api_version, self.kind)?;
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name)?,
            None => write!(f, "{}", self.name)?,
        }
        write!(f, " ({})", self.uid)
    }
}

/// What the graph keeps of an object.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Coordinates.
    pub identity: Identity,
    /// Owner references.
    pub owners: Vec<OwnerReference>,
    /// Has a deletionTimestamp.
    pub being_deleted: bool,
    /// Finalizers.
    pub finalizers: Vec<String>,
}

impl Summary {
    fn has(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

/// A node of the graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// Coordinates (for virtual nodes: as a dependent refers to them).
    pub identity: Identity,
    /// Owner references of the object.
    pub owners: Vec<OwnerReference>,
    /// UIDs of the objects that name this one as owner.
    pub dependents: HashSet<String>,
    /// Being deleted.
    pub being_deleted: bool,
    /// Being deleted in the foreground: waiting for its dependents.
    pub deleting_dependents: bool,
    /// Finalizers as last seen.
    pub finalizers: Vec<String>,
    /// Not yet seen by a monitor (only referenced as an owner).
    pub virtual_: bool,
}

/// A change to process.
#[derive(Clone, Debug)]
pub enum Event {
    /// An object was added or changed.
    Upsert(Summary),
    /// An object was deleted.
    Delete(Summary),
    /// A lookup found the object gone (or replaced): remove its node if the coordinates agree.
    VirtualDelete(Identity),
}

/// Work the graph asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// UIDs to check for deletion (`attemptToDelete`).
    pub delete: Vec<String>,
    /// UIDs of owners whose dependents must be orphaned (`attemptToOrphan`).
    pub orphan: Vec<String>,
    /// Identities known not to exist.
    pub absent: Vec<Identity>,
}

/// The graph.
#[derive(Default, Debug)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

fn owner_identity(r: &OwnerReference, namespace: Option<&str>) -> Identity {
    Identity {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        namespace: namespace.map(str::to_string),
        name: r.name.clone(),
        uid: r.uid.clone(),
    }
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

impl Graph {
    /// A node by UID.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// UIDs of observed nodes of a kind (for relists).
    pub fn observed_of(&self, api_version: &str, kind: &str) -> Vec<Identity> {
        self.nodes
            .values()
            .filter(|n| {
                !n.virtual_ && n.identity.api_version == api_version && n.identity.kind == kind
            })
            .map(|n| n.identity.clone())
            .collect()
    }

    /// Dependents whose owner reference to `uid` blocks the owner's deletion.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(n) = self.nodes.get(uid) else {
            return vec![];
        };
        n.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| d.owners.iter().any(|o| o.uid == uid && blocks(o)))
            .collect()
    }

    fn add_dependent_to_owners(
        &mut self,
        dep: &Identity,
        owners: &[OwnerReference],
        work: &mut Work,
    ) {
        for o in owners {
            match self.nodes.get_mut(&o.uid) {
                Some(owner) => {
                    owner.dependents.insert(dep.uid.clone());
                }
                None => {
                    let mut deps = HashSet::new();
                    deps.insert(dep.uid.clone());
                    self.nodes.insert(
                        o.uid.clone(),
                        Node {
                            identity: owner_identity(o, dep.namespace.as_deref()),
                            owners: vec![],
                            dependents: deps,
                            being_deleted: false,
                            deleting_dependents: false,
                            finalizers: vec![],
                            virtual_: true,
                        },
                    );
                    // Verify the owner exists.
                    work.delete.push(o.uid.clone());
                }
            }
        }
    }

    fn remove_dependent_from_owners(&mut self, dep_uid: &str, owners: &[OwnerReference]) {
        for o in owners {
            if let Some(owner) = self.nodes.get_mut(&o.uid) {
                owner.dependents.remove(dep_uid);
            }
        }
    }

    /// Processes one change and returns the work it causes (`processGraphChanges`).
    pub fn process(&mut self, event: Event) -> Work {
        let mut work = Work::default();
        match event {
            Event::Upsert(s) => self.upsert(s, &mut work),
            Event::Delete(s) => {
                if self.nodes.contains_key(&s.identity.uid) {
                    self.remove(&s.identity, &mut work);
                }
            }
            Event::VirtualDelete(id) => {
                let Some(n) = self.nodes.get(&id.uid) else {
                    return work;
                };
                if n.virtual_ || n.identity == id {
                    self.remove(&id, &mut work);
                } else {
                    // The real object disagrees with the coordinates that were found absent:
                    // dependents naming those coordinates must be re-checked.
                    work.absent.push(id.clone());
                    work.delete.extend(n.dependents.iter().cloned());
                }
            }
        }
        work
    }

    fn upsert(&mut self, s: Summary, work: &mut Work) {
        let uid = s.identity.uid.clone();
        let deleting_deps = s.being_deleted && s.has(FOREGROUND);
        let (was_deleting, had_orphan, had_foreground) = match self.nodes.get(&uid) {
            Some(n) if !n.virtual_ => (
                n.being_deleted,
                n.finalizers.iter().any(|f| f == ORPHAN),
                n.finalizers.iter().any(|f| f == FOREGROUND),
            ),
            _ => (false, false, false),
        };
        match self.nodes.get_mut(&uid) {
            None => {
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity: s.identity.clone(),
                        owners: s.owners.clone(),
                        dependents: HashSet::new(),
                        being_deleted: s.being_deleted,
                        deleting_dependents: deleting_deps,
                        finalizers: s.finalizers.clone(),
                        virtual_: false,
                    },
                );
                let owners = s.owners.clone();
                self.add_dependent_to_owners(&s.identity, &owners, work);
            }
            Some(n) => {
                if n.virtual_ {
                    // First sight of an owner known only by reference.
                    if n.identity != s.identity {
                        work.delete.extend(n.dependents.iter().cloned());
                    }
                    n.identity = s.identity.clone();
                    n.virtual_ = false;
                }
                let old_owners = std::mem::take(&mut n.owners);
                n.owners = s.owners.clone();
                if s.being_deleted {
                    n.being_deleted = true;
                }
                n.finalizers = s.finalizers.clone();
                let old_uids: HashSet<&str> = old_owners.iter().map(|o| o.uid.as_str()).collect();
                let new_uids: HashSet<&str> = s.owners.iter().map(|o| o.uid.as_str()).collect();
                let added: Vec<OwnerReference> = s
                    .owners
                    .iter()
                    .filter(|o| !old_uids.contains(o.uid.as_str()))
                    .cloned()
                    .collect();
                let removed: Vec<OwnerReference> = old_owners
                    .iter()
                    .filter(|o| !new_uids.contains(o.uid.as_str()))
                    .cloned()
                    .collect();
                // Owners no longer blocked by this object may finish their foreground deletion.
                let unblocked =
                    removed
                        .iter()
                        .filter(|o| blocks(o))
                        .chain(old_owners.iter().filter(|o| {
                            blocks(o) && s.owners.iter().any(|n| n.uid == o.uid && !blocks(n))
                        }));
                for o in unblocked {
                    if self
                        .nodes
                        .get(&o.uid)
                        .is_some_and(|n| n.deleting_dependents)
                    {
                        work.delete.push(o.uid.clone());
                    }
                }
                self.add_dependent_to_owners(&s.identity, &added, work);
                self.remove_dependent_from_owners(&uid, &removed);
            }
        }
        // Transitions (`processTransitions`).
        let starts_orphaning = s.being_deleted && s.has(ORPHAN) && !(was_deleting && had_orphan);
        let starts_foreground = deleting_deps && !(was_deleting && had_foreground);
        if starts_orphaning {
            work.orphan.push(uid.clone());
        } else if starts_foreground || deleting_deps {
            if let Some(n) = self.nodes.get_mut(&uid) {
                n.deleting_dependents = true;
            }
            if starts_foreground {
                let deps: Vec<String> = self.nodes[&uid].dependents.iter().cloned().collect();
                work.delete.extend(deps);
                work.delete.push(uid);
            }
        }
    }

    fn remove(&mut self, id: &Identity, work: &mut Work) {
        let Some(n) = self.nodes.remove(&id.uid) else {
            return;
        };
        self.remove_dependent_from_owners(&id.uid, &n.owners);
        if !n.dependents.is_empty() {
            work.absent.push(n.identity.clone());
        }
        work.delete.extend(n.dependents.iter().cloned());
        for o in &n.owners {
            if self
                .nodes
                .get(&o.uid)
                .is_some_and(|owner| owner.deleting_dependents)
            {
                work.delete.push(o.uid.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, name: &str) -> Identity {
        Identity {
            api_version: if kind == "Pod" {
                "v1".into()
            } else {
                "apps/v1".into()
            },
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    fn owned_by(owner: &Identity, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn summary(
        i: &Identity,
        owners: Vec<OwnerReference>,
        deleting: bool,
        finalizers: &[&str],
    ) -> Summary {
        Summary {
            identity: i.clone(),
            owners,
            being_deleted: deleting,
            finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn deleting_an_owner_queues_its_dependents() {
        let mut g = Graph::default();
        let d = id("Deployment", "web");
        let rs = id("ReplicaSet", "web-1");
        g.process(Event::Upsert(summary(&d, vec![], false, &[])));
        let w = g.process(Event::Upsert(summary(
            &rs,
            vec![owned_by(&d, true)],
            false,
            &[],
        )));
        assert_eq!(w, Work::default(), "the owner is known");
        assert!(g.get(&d.uid).unwrap().dependents.contains(&rs.uid));
        let w = g.process(Event::Delete(summary(&d, vec![], false, &[])));
        assert_eq!(w.delete, vec![rs.uid.clone()]);
        assert_eq!(w.absent, vec![d.clone()]);
    }

    #[test]
    fn unknown_owners_become_virtual_nodes_to_verify() {
        let mut g = Graph::default();
        let d = id("Deployment", "web");
        let rs = id("ReplicaSet", "web-1");
        let w = g.process(Event::Upsert(summary(
            &rs,
            vec![owned_by(&d, true)],
            false,
            &[],
        )));
        assert_eq!(w.delete, vec![d.uid.clone()]);
        assert!(g.get(&d.uid).unwrap().virtual_);
        // Found absent: the virtual node goes and its dependent is checked.
        let w = g.process(Event::VirtualDelete(d.clone()));
        assert_eq!(w.delete, vec![rs.uid.clone()]);
        assert!(g.get(&d.uid).is_none());
        // Seen for real instead: the virtual node becomes real and keeps its dependents.
        let mut g = Graph::default();
        g.process(Event::Upsert(summary(
            &rs,
            vec![owned_by(&d, true)],
            false,
            &[],
        )));
        let w = g.process(Event::Upsert(summary(&d, vec![], false, &[])));
        assert_eq!(w, Work::default());
        let owner = g.get(&d.uid).unwrap();
        assert!(!owner.virtual_);
        assert!(owner.dependents.contains(&rs.uid));
    }

    #[test]
    fn foreground_deletion_waits_for_blocking_dependents() {
        let mut g = Graph::default();
        let d = id("Deployment", "web");
        let rs = id("ReplicaSet", "web-1");
        let other = id("ReplicaSet", "loose");
        g.process(Event::Upsert(summary(&d, vec![], false, &[])));
        g.process(Event::Upsert(summary(
            &rs,
            vec![owned_by(&d, true)],
            false,
            &[],
        )));
        g.process(Event::Upsert(summary(
            &other,
            vec![owned_by(&d, false)],
            false,
            &[],
        )));
        let w = g.process(Event::Upsert(summary(&d, vec![], true, &[FOREGROUND])));
        let mut queued = w.delete.clone();
        queued.sort();
        assert_eq!(
            queued,
            vec![other.uid.clone(), d.uid.clone(), rs.uid.clone()]
        );
        assert!(g.get(&d.uid).unwrap().deleting_dependents);
        let blocking: Vec<&str> = g
            .blocking_dependents(&d.uid)
            .iter()
            .map(|n| n.identity.name.as_str())
            .collect();
        assert_eq!(blocking, ["web-1"]);
        // The blocking dependent goes: the owner is looked at again.
        let w = g.process(Event::Delete(summary(
            &rs,
            vec![owned_by(&d, true)],
            false,
            &[],
        )));
        assert_eq!(w.delete, vec![d.uid.clone()]);
        assert!(g.blocking_dependents(&d.uid).is_empty());
    }

    #[test]
    fn orphaning_starts_once() {
        let mut g = Graph::default();
        let d = id("Deployment", "web");
        g.process(Event::Upsert(summary(&d, vec![], false, &[])));
        let w = g.process(Event::Upsert(summary(&d, vec![], true, &[ORPHAN])));
        assert_eq!(w.orphan, vec![d.uid.clone()]);
        let w = g.process(Event::Upsert(summary(&d, vec![], true, &[ORPHAN])));
        assert!(w.orphan.is_empty(), "already orphaning");
    }

    #[test]
    fn releasing_a_blocking_reference_unblocks_the_owner() {
        let mut g = Graph::default();
        let d = id("Deployment", "web");
        let rs = id("ReplicaSet", "web-1");
        g.process(Event::Upsert(summary(&d, vec![], false, &[])));
        g.process(Event::Upsert(summary(
            &rs,
            vec![owned_by(&d, true)],
            false,
            &[],
        )));
        g.process(Event::Upsert(summary(&d, vec![], true, &[FOREGROUND])));
        let w = g.process(Event::Upsert(summary(&rs, vec![], false, &[])));
        assert_eq!(w.delete, vec![d.uid.clone()]);
        assert!(g.get(&d.uid).unwrap().dependents.is_empty());
    }
}
