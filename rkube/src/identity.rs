//! The components' identities: one client certificate each from the cluster CA
//! (`DATA/pki`), written as kubeconfigs under `DATA/kubeconfigs/` (mode 0600) — the scheduler,
//! controller manager and proxy as Kubernetes names them, the local kubelet as
//! `system:node:<node>` in `system:nodes` (so the Node authorizer confines it), the DNS as the
//! ServiceAccount `kube-system/kube-dns` (bound to the ClusterRole `system:kube-dns`: list/watch
//! of Services, EndpointSlices, Namespaces and Pods, as upstream CoreDNS' `system:coredns`), and
//! the server itself (`rkube-server` in `system:masters`: readiness, manifests, the DNS
//! endpoints). Certificates are kept in `DATA/pki/` and reused while valid.

use std::path::{Path, PathBuf};

use rkube_apiserver::kubeconfig::{Credentials, render, write_text};
use rkube_apiserver::pki::{Pki, PkiError};

use crate::config::{Component, Layout, ServerConfig};

/// Why an identity could not be written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The certificate could not be issued.
    #[error("issuing the certificate of {user}: {source}")]
    Issue {
        /// The user.
        user: String,
        /// The cause.
        source: PkiError,
    },
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Who a component is to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The kubeconfig's file stem (`DATA/kubeconfigs/<file>.kubeconfig`).
    pub file: &'static str,
    /// The user (certificate CN).
    pub user: String,
    /// The groups (certificate O).
    pub groups: Vec<String>,
}

impl Identity {
    fn new(file: &'static str, user: impl Into<String>, groups: &[&str]) -> Self {
        Identity {
            file,
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// The server's own identity (readiness checks, manifests, the kube-dns endpoints).
pub fn supervisor() -> Identity {
    Identity::new("rkube-server", "rkube-server", &["system:masters"])
}

/// The scheduler's identity.
pub fn scheduler() -> Identity {
    Identity::new("scheduler", "system:kube-scheduler", &[])
}

/// The controller manager's identity.
pub fn controller_manager() -> Identity {
    Identity::new("controller-manager", "system:kube-controller-manager", &[])
}

/// The proxy's identity.
pub fn proxy() -> Identity {
    Identity::new("proxy", "system:kube-proxy", &[])
}

/// The cluster DNS's identity: the ServiceAccount `kube-system/kube-dns`, which the default
/// binding `system:kube-dns` names (a certificate may carry a ServiceAccount's user name, as
/// in Kubernetes).
pub fn dns() -> Identity {
    Identity::new(
        "dns",
        "system:serviceaccount:kube-system:kube-dns",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
        ],
    )
}

/// The local kubelet's identity.
pub fn kubelet(node_name: &str) -> Identity {
    Identity::new(
        "kubelet",
        format!("system:node:{node_name}"),
        &["system:nodes"],
    )
}

/// The identities the configuration needs: the server's and those of the components it runs.
pub fn needed(config: &ServerConfig) -> Vec<Identity> {
    let mut out = vec![supervisor()];
    if config.runs(Component::Scheduler) {
        out.push(scheduler());
    }
    if config.runs(Component::ControllerManager) {
        out.push(controller_manager());
    }
    if config.runs(Component::Dns) {
        out.push(dns());
    }
    if config.runs(Component::Agent) {
        out.push(kubelet(&config.node.node_name));
    }
    if config.runs(Component::Proxy) {
        out.push(proxy());
    }
    out
}

/// Issues a certificate for `id` and writes its kubeconfig for `server_url`; returns its path.
pub fn write_kubeconfig(
    pki: &Pki,
    layout: &Layout,
    server_url: &str,
    id: &Identity,
) -> Result<PathBuf, IdentityError> {
    let cert = pki
        .client_stored(id.file, &id.user, &id.groups)
        .map_err(|source| IdentityError::Issue {
            user: id.user.clone(),
            source,
        })?;
    let dir = layout.kubeconfigs();
    create_private_dir(&dir)?;
    let path = layout.kubeconfig(id.file);
    let text = render(
        server_url,
        pki.ca_pem(),
        &id.user,
        &Credentials::Certificate {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        },
    );
    write_text(&path, &text).map_err(|source| IdentityError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Creates `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| IdentityError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn kubeconfigs_carry_each_identity() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let pki = Pki::load_or_create(&layout.pki()).unwrap();
        let config = ServerConfig::new(dir.path(), "node-a");
        let ids = needed(&config);
        let users: Vec<&str> = ids.iter().map(|i| i.user.as_str()).collect();
        assert_eq!(
            users,
            [
                "rkube-server",
                "system:kube-scheduler",
                "system:kube-controller-manager",
                "system:serviceaccount:kube-system:kube-dns",
                "system:node:node-a",
                "system:kube-proxy"
            ]
        );
        for id in &ids {
            let path = write_kubeconfig(&pki, &layout, "https://127.0.0.1:6443", id).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            let kc: serde_json::Value =
                serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let data = kc["users"][0]["user"]["client-certificate-data"]
                .as_str()
                .unwrap();
            let pem = String::from_utf8(
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).unwrap(),
            )
            .unwrap();
            let der = rkube_apiserver::pki::pem_der(&pem, &path).unwrap();
            let subject = rkube_apiserver::pki::subject_of(&der).unwrap();
            assert_eq!(subject.common_name, id.user);
            assert_eq!(subject.organizations, id.groups);
        }
        let mode = std::fs::metadata(layout.kubeconfigs())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let mut c = config.clone();
        c.disabled.insert(Component::Agent);
        let users: Vec<String> = needed(&c).into_iter().map(|i| i.user).collect();
        assert!(
            !users
                .iter()
                .any(|u| u.starts_with("system:node:") || u.contains("dns"))
        );
    }
}
