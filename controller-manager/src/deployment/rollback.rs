//! Rollbacks. `kubectl rollout undo` patches the Deployment's template with an old
//! ReplicaSet's; the sync then finds that ReplicaSet as the new one and raises its revision
//! (keeping the old number in `deployment.kubernetes.io/revision-history`). This module also
//! honours the `deprecated.deployment.rollback.to` annotation of the extensions/v1beta1
//! `rollbackTo` field (`deployment/rollback.go`): copy the template of the requested revision
//! (0 = the previous one) into the Deployment and clear the request.

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::Error;
use super::sync::Sync;
use super::util::{self, ROLLBACK_TO};

/// The ReplicaSet of a revision; 0 means the one before the current (`LastRevision`).
pub fn find_revision<'a>(rses: &[&'a ReplicaSet], revision: i64) -> Option<&'a ReplicaSet> {
    let revision = if revision == 0 {
        util::last_revision(rses)
    } else {
        revision
    };
    if revision == 0 {
        return None;
    }
    rses.iter()
        .copied()
        .find(|rs| util::revision(rs) == revision)
}

impl Sync<'_> {
    /// Performs a requested rollback (`rollback`).
    pub async fn rollback(&mut self, rs_list: &[ReplicaSet]) -> Result<(), Error> {
        let (new_rs, olds) = self.all_replicasets(rs_list, true).await?;
        let all: Vec<&ReplicaSet> = olds.iter().chain(new_rs.as_ref()).collect();
        let to = self.rollback_to().unwrap_or(0);
        let Some(target) = find_revision(&all, to).cloned() else {
            let msg = if to == 0 {
                "Unable to find last revision."
            } else {
                "Unable to find the revision to rollback to."
            };
            self.ctx
                .recorder
                .warning(&self.d, "DeploymentRollbackRevisionNotFound", msg.into());
            return self.clear_rollback_to().await;
        };
        let template = target
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let current = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        if util::equal_ignore_hash(&template, &current) {
            let name = self.d.metadata.name.clone().unwrap_or_default();
            self.ctx.recorder.warning(
                &self.d,
                "DeploymentRollbackTemplateUnchanged",
                format!("The rollback revision contains the same template as current deployment {name:?}"),
            );
            return self.clear_rollback_to().await;
        }
        // Copy the template without the hash label, and the ReplicaSet's annotations.
        let mut template = template;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(util::POD_TEMPLATE_HASH);
        }
        self.d.spec.get_or_insert_with(Default::default).template = template;
        util::set_deployment_annotations_to(&mut self.d, &target);
        let revision = util::revision(&target);
        self.clear_rollback_to().await?;
        let name = self.d.metadata.name.clone().unwrap_or_default();
        self.ctx.recorder.normal(
            &self.d,
            "DeploymentRollback",
            format!("Rolled back deployment {name:?} to revision {revision}"),
        );
        Ok(())
    }

    /// Removes the rollback request and writes the Deployment.
    async fn clear_rollback_to(&mut self) -> Result<(), Error> {
        if let Some(a) = self.d.metadata.annotations.as_mut() {
            a.remove(ROLLBACK_TO);
        }
        self.update_deployment().await
    }
}
