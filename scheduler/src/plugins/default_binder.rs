//! DefaultBinder: binds a pod by POSTing a `Binding` to its `pods/binding` subresource (the
//! API server sets `spec.nodeName` once and adds the PodScheduled condition).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::config::ConfigError;
use crate::framework::registry::Handle;
use crate::framework::{BindPlugin, Plugin, Status};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "DefaultBinder";

/// Binds through the API.
pub struct DefaultBinder {
    client: Option<kube::Client>,
}

/// Builds the plugin with the handle's client.
pub fn factory(_args: &serde_json::Value, h: &Handle) -> Result<Arc<dyn Plugin>, ConfigError> {
    Ok(Arc::new(DefaultBinder {
        client: h.client.clone(),
    }))
}

/// The Binding object for a pod and node.
pub fn binding(pod: &PodInfo, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: (!pod.uid.is_empty()).then(|| pod.uid.clone()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    }
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl BindPlugin for DefaultBinder {
    async fn bind(&self, pod: &PodInfo, node: &str) -> Status {
        let Some(client) = &self.client else {
            return Status::error("DefaultBinder has no API client");
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &pod.name,
                &PostParams::default(),
                &binding(pod, node),
            )
            .await
        {
            Ok(_) => Status::success(),
            Err(e) => Status::error(format!("binding rejected: {e}")),
        }
    }
}
