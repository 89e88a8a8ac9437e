//! Writes the admin kubeconfig (`DATA/admin.kubeconfig`) that kubectl and kube-rs use as is.

use std::path::Path;

/// The kubeconfig text for a server URL.
pub fn admin_kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: rkube
  cluster:
    server: {server}
contexts:
- name: rkube
  context:
    cluster: rkube
    user: admin
current-context: rkube
users:
- name: admin
  user: {{}}
preferences: {{}}
"
    )
}

/// Writes the admin kubeconfig to `path` (owner-only permissions), atomically.
pub fn write(path: &Path, server: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, admin_kubeconfig(server))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}
