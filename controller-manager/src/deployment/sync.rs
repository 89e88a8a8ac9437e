//! The parts of a Deployment sync every strategy shares (Kubernetes' `deployment/sync.go`):
//! finding or creating the new ReplicaSet and keeping the revision annotations in step,
//! scaling ReplicaSets (proportionally during a rollout, with `ScalingReplicaSet` events),
//! the sync of paused Deployments and scaling events, the clean-up of old ReplicaSets beyond
//! `revisionHistoryLimit`, and the status counters and Available condition.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use super::util::{self, reason};
use super::{Ctx, Error};
use crate::podutil::{controller_ref, is_controlled_by, key};
use crate::runner::{is_already_exists, is_namespace_terminating, is_not_found};

/// One sync of one Deployment: the Deployment as this sync has changed it, and where to write.
pub struct Sync<'a> {
    /// Shared context.
    pub ctx: &'a Ctx,
    /// The Deployment (status and annotations change as the sync goes).
    pub d: Deployment,
    /// Its annotations as stored, to tell when they must be written.
    stored_annotations: Option<BTreeMap<String, String>>,
    /// Deployments of the namespace.
    pub d_api: Api<Deployment>,
    /// ReplicaSets of the namespace.
    pub rs_api: Api<ReplicaSet>,
    /// When to look at the Deployment again without a change.
    pub requeue: Option<std::time::Duration>,
    /// ReplicaSets this sync wrote, by UID: newer than the cache.
    written: std::collections::HashMap<String, ReplicaSet>,
}

impl<'a> Sync<'a> {
    /// A sync of `d`.
    pub fn new(ctx: &'a Ctx, d: Deployment) -> Self {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        Self {
            ctx,
            stored_annotations: d.metadata.annotations.clone(),
            d_api: Api::namespaced(ctx.client.clone(), &ns),
            rs_api: Api::namespaced(ctx.client.clone(), &ns),
            d,
            requeue: None,
            written: Default::default(),
        }
    }

    /// Remembers a ReplicaSet as this sync wrote it.
    fn wrote(&mut self, rs: &ReplicaSet) {
        if let Some(uid) = &rs.metadata.uid {
            self.written.insert(uid.clone(), rs.clone());
        }
    }

    /// The cached ReplicaSets with this sync's own writes applied.
    fn fresh(&self, rs_list: &[ReplicaSet]) -> Vec<ReplicaSet> {
        rs_list
            .iter()
            .map(|r| {
                r.metadata
                    .uid
                    .as_ref()
                    .and_then(|u| self.written.get(u))
                    .unwrap_or(r)
                    .clone()
            })
            .collect()
    }

    /// Whether this sync changed the Deployment's annotations (not yet written).
    pub fn annotations_dirty(&self) -> bool {
        self.d.metadata.annotations != self.stored_annotations
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        key(&self.d.metadata)
    }

    fn now(&self) -> jiff::Timestamp {
        self.ctx.clock.now()
    }

    fn err(&self, what: &'static str) -> impl FnOnce(kube::Error) -> Error + '_ {
        move |source| Error::Api {
            key: self.key(),
            what,
            source,
        }
    }

    /// Writes the Deployment's status (and first its annotations, if this sync changed them:
    /// the status subresource leaves metadata alone).
    pub async fn update_status(&mut self) -> Result<(), Error> {
        let name = self.d.metadata.name.clone().unwrap_or_default();
        if self.d.metadata.annotations != self.stored_annotations {
            // An update (at the resourceVersion read), as Kubernetes' controller writes it: the
            // deployment-controller role may update Deployments, not patch them.
            let updated = self
                .d_api
                .replace(&name, &PostParams::default(), &self.d)
                .await
                .map_err(self.err("updating annotations"))?;
            self.stored_annotations = updated.metadata.annotations.clone();
            self.d.metadata.resource_version = updated.metadata.resource_version;
            self.d.metadata.generation = updated.metadata.generation;
        }
        let updated = self
            .d_api
            .replace_status(&name, &PostParams::default(), &self.d)
            .await
            .map_err(self.err("updating status"))?;
        self.d.metadata.resource_version = updated.metadata.resource_version;
        Ok(())
    }

    /// Replaces the whole Deployment (spec and metadata; rollbacks).
    pub async fn update_deployment(&mut self) -> Result<(), Error> {
        let name = self.d.metadata.name.clone().unwrap_or_default();
        let updated = self
            .d_api
            .replace(&name, &PostParams::default(), &self.d)
            .await
            .map_err(self.err("updating deployment"))?;
        self.stored_annotations = updated.metadata.annotations.clone();
        self.d = updated;
        Ok(())
    }

    /// The new ReplicaSet (created when asked and missing) and all old ones, with the
    /// revision annotations brought up to date (`getAllReplicaSetsAndSyncRevision`).
    pub async fn all_replicasets(
        &mut self,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        let rs_list = self.fresh(rs_list);
        let olds = util::find_old(&self.d, &rs_list);
        let new_rs = Box::pin(self.new_replicaset(&rs_list, &olds, create)).await?;
        Ok((new_rs, olds))
    }

    /// `getNewReplicaSet`.
    async fn new_replicaset(
        &mut self,
        rs_list: &[ReplicaSet],
        olds: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let existing = util::find_new(&self.d, rs_list).cloned();
        let new_revision = util::max_revision(olds) + 1;
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(existing) = existing {
            let mut rs = existing.clone();
            let annotations_changed =
                util::set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotations_changed || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                let name = rs.metadata.name.clone().unwrap_or_default();
                let updated = self
                    .rs_api
                    .replace(&name, &PostParams::default(), &rs)
                    .await
                    .map_err(self.err("updating new replicaset"))?;
                self.wrote(&updated);
                return Ok(Some(updated));
            }
            let rev = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(util::REVISION))
                .cloned()
                .unwrap_or_default();
            let mut needs_update = util::set_deployment_revision(&mut self.d, &rev);
            if util::has_progress_deadline(&self.d)
                && util::get_condition(
                    self.d.status.as_ref().unwrap_or(&Default::default()),
                    reason::PROGRESSING,
                )
                .is_none()
            {
                let c = util::new_condition(
                    reason::PROGRESSING,
                    "True",
                    reason::FOUND_NEW_RS,
                    format!(
                        "Found new replica set {:?}",
                        rs.metadata.name.clone().unwrap_or_default()
                    ),
                    self.ctx.clock.now(),
                );
                let status = self.d.status.get_or_insert_with(Default::default);
                util::set_condition(status, c);
                needs_update = true;
            }
            if needs_update {
                self.update_status().await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        // Create the new ReplicaSet, named after the template's hash.
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = spec.template.clone();
        let hash = util::compute_hash(&template, collision);
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels = Some(labels.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!(
            "{}-{hash}",
            self.d.metadata.name.clone().unwrap_or_default()
        );
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![controller_ref(&self.d)]),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = olds.iter().chain(std::iter::once(&new_rs)).collect();
        let count = util::new_rs_new_replicas(&self.d, &all, &new_rs);
        util::set_rs_replicas(&mut new_rs, count);
        util::set_new_rs_annotations(&self.d, &mut new_rs, new_revision, false);
        let mut already_exists = false;
        let created = match self.rs_api.create(&PostParams::default(), &new_rs).await {
            Ok(rs) => rs,
            Err(e) if is_already_exists(&e) => {
                already_exists = true;
                // Ours if we control it and its template is ours; else a hash collision.
                let cached = self.ctx.replicasets.get(&crate::informer::ref_in(
                    self.d.metadata.namespace.as_deref(),
                    &name,
                ));
                let uid = self.d.metadata.uid.clone().unwrap_or_default();
                match cached {
                    Some(rs)
                        if is_controlled_by(&rs.metadata, &uid)
                            && rs
                                .spec
                                .as_ref()
                                .and_then(|s| s.template.as_ref())
                                .is_some_and(|t| util::equal_ignore_hash(t, &spec.template)) =>
                    {
                        (*rs).clone()
                    }
                    Some(_) => {
                        let status = self.d.status.get_or_insert_with(Default::default);
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        tracing::info!(deployment = %self.key(), "hash collision; bumping collisionCount");
                        self.update_status().await?;
                        return Err(Error::Api {
                            key: self.key(),
                            what: "creating new replicaset",
                            source: e,
                        });
                    }
                    None => {
                        return Err(Error::Api {
                            key: self.key(),
                            what: "creating new replicaset (not yet in cache)",
                            source: e,
                        });
                    }
                }
            }
            Err(e) if is_namespace_terminating(&e) => {
                return Err(Error::Api {
                    key: self.key(),
                    what: "creating new replicaset",
                    source: e,
                });
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {name:?}: {}",
                    crate::replicaset::sync::api_message(&e)
                );
                if util::has_progress_deadline(&self.d) {
                    let c = util::new_condition(
                        reason::PROGRESSING,
                        "False",
                        reason::FAILED_RS_CREATE,
                        msg.clone(),
                        self.now(),
                    );
                    util::set_condition(self.d.status.get_or_insert_with(Default::default), c);
                    let _ = self.update_status().await;
                }
                self.ctx
                    .recorder
                    .warning(&self.d, reason::FAILED_RS_CREATE, msg);
                return Err(Error::Api {
                    key: self.key(),
                    what: "creating new replicaset",
                    source: e,
                });
            }
        };
        if !already_exists && count > 0 {
            self.ctx.recorder.normal(
                &self.d,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} from 0 to {count}",
                    created.metadata.name.clone().unwrap_or_default()
                ),
            );
        }
        let mut needs_update =
            util::set_deployment_revision(&mut self.d, &new_revision.to_string());
        if !already_exists && util::has_progress_deadline(&self.d) {
            let c = util::new_condition(
                reason::PROGRESSING,
                "True",
                reason::NEW_RS_CREATED,
                format!(
                    "Created new replica set {:?}",
                    created.metadata.name.clone().unwrap_or_default()
                ),
                self.now(),
            );
            util::set_condition(self.d.status.get_or_insert_with(Default::default), c);
            needs_update = true;
        }
        if needs_update {
            self.update_status().await?;
        }
        Ok(Some(created))
    }

    /// Scales a ReplicaSet to `new_scale` (and refreshes its replica annotations), with a
    /// `ScalingReplicaSet` event; returns whether the size changed and the ReplicaSet as
    /// written (`scaleReplicaSetAndRecordEvent`).
    pub async fn scale_rs(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
    ) -> Result<(bool, ReplicaSet), Error> {
        let cur = util::rs_replicas(rs);
        if cur == new_scale {
            return Ok((false, rs.clone()));
        }
        let op = if cur < new_scale { "up" } else { "down" };
        self.scale_rs_op(rs, new_scale, op).await
    }

    /// `scaleReplicaSet`.
    pub async fn scale_rs_op(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
        op: &str,
    ) -> Result<(bool, ReplicaSet), Error> {
        let cur = util::rs_replicas(rs);
        let size_changes = cur != new_scale;
        let desired = util::replicas(&self.d);
        let max = desired + util::max_surge(&self.d);
        let annotations_change = util::replicas_annotations_need_update(rs, desired, max);
        if !size_changes && !annotations_change {
            return Ok((false, rs.clone()));
        }
        let mut copy = rs.clone();
        util::set_rs_replicas(&mut copy, new_scale);
        util::set_replicas_annotations(&mut copy, desired, max);
        let name = copy.metadata.name.clone().unwrap_or_default();
        let updated = self
            .rs_api
            .replace(&name, &PostParams::default(), &copy)
            .await
            .map_err(self.err("scaling replicaset"))?;
        self.wrote(&updated);
        if size_changes {
            self.ctx.recorder.normal(
                &self.d,
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {name} from {cur} to {new_scale}"),
            );
        }
        Ok((size_changes, updated))
    }

    /// Whether `spec.replicas` changed since the active ReplicaSets were last scaled
    /// (`isScalingEvent`).
    pub async fn is_scaling_event(&mut self, rs_list: &[ReplicaSet]) -> Result<bool, Error> {
        let (new_rs, olds) = self.all_replicasets(rs_list, false).await?;
        let want = util::replicas(&self.d);
        Ok(olds
            .iter()
            .chain(new_rs.as_ref())
            .filter(|r| util::rs_replicas(r) > 0)
            .filter_map(util::desired_replicas_annotation)
            .any(|d| d != want))
    }

    /// Scales to `spec.replicas`: the only active ReplicaSet entirely; old ones to zero once
    /// the new one is saturated; otherwise every active ReplicaSet by its share (`scale`).
    pub async fn scale(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        olds: &[ReplicaSet],
    ) -> Result<(), Error> {
        let want = util::replicas(&self.d);
        if let Some(target) = util::find_active_or_latest(new_rs, olds).cloned() {
            if util::rs_replicas(&target) == want {
                return Ok(());
            }
            self.scale_rs(&target, want).await?;
            return Ok(());
        }
        if util::is_saturated(&self.d, new_rs) {
            for old in olds.iter().filter(|r| util::rs_replicas(r) > 0) {
                self.scale_rs(old, 0).await?;
            }
            return Ok(());
        }
        if !util::is_rolling(&self.d) {
            return Ok(());
        }
        let mut all: Vec<ReplicaSet> = olds
            .iter()
            .chain(new_rs)
            .filter(|r| util::rs_replicas(r) > 0)
            .cloned()
            .collect();
        let current = util::spec_sum(&all);
        let allowed = if want > 0 {
            want + util::max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - current;
        let op = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                all.sort_by(util::by_size_newer);
                "up"
            }
            std::cmp::Ordering::Less => {
                all.sort_by(util::by_size_older);
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let p = util::proportion(rs, &self.d, to_add, added);
                sizes.push(util::rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(util::rs_replicas(rs));
            }
        }
        for (i, rs) in all.iter().enumerate() {
            let mut size = sizes[i];
            if i == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_rs_op(rs, size, op).await?;
        }
        Ok(())
    }

    /// The sync of a paused Deployment or a scaling event (`sync`).
    pub async fn sync(&mut self, rs_list: &[ReplicaSet]) -> Result<(), Error> {
        let (new_rs, olds) = self.all_replicasets(rs_list, false).await?;
        self.scale(new_rs.as_ref(), &olds).await?;
        if self.paused() && self.rollback_to().is_none() {
            self.cleanup(&olds).await?;
        }
        let all: Vec<ReplicaSet> = olds.into_iter().chain(new_rs.clone()).collect();
        self.sync_status(&all, new_rs.as_ref()).await
    }

    /// Status only, for a Deployment being deleted (`syncStatusOnly`).
    pub async fn sync_status_only(&mut self, rs_list: &[ReplicaSet]) -> Result<(), Error> {
        let (new_rs, olds) = self.all_replicasets(rs_list, false).await?;
        let all: Vec<ReplicaSet> = olds.into_iter().chain(new_rs.clone()).collect();
        self.sync_status(&all, new_rs.as_ref()).await
    }

    /// Whether the Deployment is paused.
    pub fn paused(&self) -> bool {
        self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
    }

    /// The revision a rollback was requested to, if any.
    pub fn rollback_to(&self) -> Option<i64> {
        self.d
            .metadata
            .annotations
            .as_ref()?
            .get(util::ROLLBACK_TO)
            .map(|v| v.parse().unwrap_or(0))
    }

    /// Records pausing and resuming in the Progressing condition (`checkPausedConditions`).
    pub async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        if !util::has_progress_deadline(&self.d) {
            return Ok(());
        }
        let status = self.d.status.clone().unwrap_or_default();
        let cond = util::get_condition(&status, reason::PROGRESSING);
        if cond.is_some_and(|c| c.reason.as_deref() == Some(reason::TIMED_OUT)) {
            return Ok(());
        }
        let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(reason::PAUSED));
        let c = if self.paused() && !paused_cond {
            util::new_condition(
                reason::PROGRESSING,
                "Unknown",
                reason::PAUSED,
                "Deployment is paused".into(),
                self.now(),
            )
        } else if !self.paused() && paused_cond {
            util::new_condition(
                reason::PROGRESSING,
                "Unknown",
                reason::RESUMED,
                "Deployment is resumed".into(),
                self.now(),
            )
        } else {
            return Ok(());
        };
        util::set_condition(self.d.status.get_or_insert_with(Default::default), c);
        self.update_status().await
    }

    /// Deletes the oldest old ReplicaSets beyond `revisionHistoryLimit` that run nothing
    /// (`cleanupDeployment`).
    pub async fn cleanup(&mut self, olds: &[ReplicaSet]) -> Result<(), Error> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = olds
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| util::by_revision(a, b));
        for rs in cleanable.into_iter().take(diff as usize) {
            let st = rs.status.clone().unwrap_or_default();
            if st.replicas != 0
                || util::rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0)
            {
                continue;
            }
            let name = rs.metadata.name.clone().unwrap_or_default();
            tracing::debug!(deployment = %self.key(), replicaset = %name, "cleaning up old replicaset");
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self.rs_api.delete(&name, &params).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(self.err("deleting old replicaset")(e)),
            }
        }
        Ok(())
    }

    /// The status the ReplicaSets add up to, with the Available condition (`calculateStatus`).
    pub fn calculate_status(
        &self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> DeploymentStatus {
        let available = util::available_sum(all);
        let total = util::spec_sum(all);
        let unavailable = (total - available).max(0);
        let old = self.d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(util::actual_sum(all)),
            updated_replicas: Some(util::actual_sum(new_rs)),
            ready_replicas: Some(util::ready_sum(all)),
            available_replicas: Some(available),
            unavailable_replicas: Some(unavailable),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: old.terminating_replicas,
        };
        let c = if available >= util::replicas(&self.d) - util::max_unavailable(&self.d) {
            util::new_condition(
                reason::AVAILABLE,
                "True",
                reason::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now(),
            )
        } else {
            util::new_condition(
                reason::AVAILABLE,
                "False",
                reason::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now(),
            )
        };
        util::set_condition(&mut status, c);
        status
    }

    /// Writes the calculated status if it differs (`syncDeploymentStatus`).
    pub async fn sync_status(
        &mut self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), Error> {
        let status = self.calculate_status(all, new_rs);
        if util::status_eq(
            self.d.status.as_ref().unwrap_or(&Default::default()),
            &status,
        ) && self.d.metadata.annotations == self.stored_annotations
        {
            return Ok(());
        }
        self.d.status = Some(status);
        self.update_status().await
    }
}
