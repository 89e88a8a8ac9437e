//! ServiceAccount admission for pods: the `default` ServiceAccount unless one is named, and —
//! unless the pod or its ServiceAccount opts out with `automountServiceAccountToken: false` — a
//! projected `kube-api-access-xxxxx` volume (a bound ServiceAccount token, the cluster CA from
//! the `kube-root-ca.crt` ConfigMap and the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container, as Kubernetes does, so
//! in-cluster clients (kube-rs `Client::try_default()`, client-go `rest.InClusterConfig()`)
//! work from any pod.
//!
//! Unlike Kubernetes, a pod whose ServiceAccount does not exist (yet) is not refused: a new
//! namespace's `default` ServiceAccount appears a moment after the namespace, and the kubelet
//! retries the token until it can be issued.

use k8s_openapi::api::core::v1::KeyToPath;
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile,
    ObjectFieldSelector, Pod, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};

use crate::error::ApiError;
use crate::registry::Api;
use crate::resources;

/// Where the token, `ca.crt` and `namespace` appear in containers.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The token's lifetime as requested by the volume (Kubernetes' 3607 s: one hour plus a few
/// seconds, which tells the issuer the request came from this admission).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Sets the ServiceAccount and mounts its token, CA and namespace (see the module docs).
pub async fn admit(api: &Api, pod: &mut Pod) -> Result<(), ApiError> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let ns = ns.as_str();
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let spec = pod.spec.get_or_insert_with(Default::default);
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        spec.service_account_name = Some("default".into());
    }
    let sa_name = spec.service_account_name.clone().unwrap_or_default();
    spec.service_account = Some(sa_name.clone());
    if mirror {
        return Ok(());
    }
    /// The one field of the ServiceAccount read here (the rest is skipped, unparsed).
    #[derive(Default, serde::Deserialize)]
    struct Automount {
        #[serde(default, rename = "automountServiceAccountToken")]
        automount: Option<bool>,
    }
    let sa_automount = crate::admission::cached_object::<Automount>(
        api,
        &resources::SERVICEACCOUNTS,
        Some(ns),
        &sa_name,
    )
    .await?
    .and_then(|sa| sa.automount);
    let automount = spec
        .automount_service_account_token
        .or(sa_automount)
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    let mounted = |c: &Container| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == MOUNT_PATH)
    };
    let all_mounted = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(mounted);
    if all_mounted {
        return Ok(());
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    let name = unused_name(volumes);
    volumes.push(api_access_volume(&name));
    let mount = VolumeMount {
        name,
        mount_path: MOUNT_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    };
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if !mounted(c) {
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(mount.clone());
        }
    }
    Ok(())
}

/// A `kube-api-access-xxxxx` name no volume of the pod has.
fn unused_name(volumes: &[Volume]) -> String {
    loop {
        let name = crate::registry::meta::generate_name(VOLUME_PREFIX);
        if !volumes.iter().any(|v| v.name == name) {
            return name;
        }
    }
}

/// The projected volume: token, `ca.crt`, `namespace`.
pub fn api_access_volume(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        path: "token".into(),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: crate::bootstrap::ROOT_CA_CONFIGMAP.into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    }
}
