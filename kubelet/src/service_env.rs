//! Service environment variables, as Docker links named them and Kubernetes keeps them: for
//! every Service with a ClusterIP in the pod's namespace (unless `enableServiceLinks: false`)
//! and always for the API server's `kubernetes` Service in `default`, `<NAME>_SERVICE_HOST`,
//! `<NAME>_SERVICE_PORT[_<PORTNAME>]` and the `<NAME>_PORT…` link variables. In-cluster
//! clients (kube-rs `Client::try_default()`, client-go) find the API server through
//! `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`.

use k8s_openapi::api::core::v1::Service;

/// The variable name prefix of a Service (`my-svc` → `MY_SVC`).
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// The variables of `services` (those without a ClusterIP, or headless, give none), in a
/// stable order: by Service name, then as Kubernetes lists them.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    sorted.dedup_by(|a, b| a.metadata.name == b.metadata.name);
    let mut out = Vec::new();
    for svc in sorted {
        let Some(spec) = &svc.spec else { continue };
        let ip = spec.cluster_ip.as_deref().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let name = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{name}_SERVICE_PORT_{}", env_name(pn)),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        // The address is bracketed for IPv6, as Kubernetes does.
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        out.push((
            format!("{name}_PORT"),
            format!(
                "{}://{host}:{}",
                proto(first).to_ascii_lowercase(),
                first.port
            ),
        ));
        for p in &ports {
            let proto = proto(p);
            let lower = proto.to_ascii_lowercase();
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            out.push((prefix.clone(), format!("{lower}://{host}:{}", p.port)));
            out.push((format!("{prefix}_PROTO"), lower));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn variables_as_kubernetes_names_them() {
        let services = [
            svc(
                serde_json::json!({"metadata": {"name": "kubernetes"}, "spec": {
                "clusterIP": "10.96.0.1",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}),
            ),
            svc(serde_json::json!({"metadata": {"name": "my-db"}, "spec": {
                "clusterIP": "10.96.0.9",
                "ports": [{"port": 5432}, {"name": "dns", "port": 53, "protocol": "UDP"}]}})),
            svc(
                serde_json::json!({"metadata": {"name": "headless"}, "spec": {
                "clusterIP": "None", "ports": [{"port": 80}]}}),
            ),
        ];
        let env = service_env(&services);
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{k} missing in {env:?}"))
        };
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), "10.96.0.1");
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), "443");
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), "443");
        assert_eq!(get("KUBERNETES_PORT"), "tcp://10.96.0.1:443");
        assert_eq!(get("KUBERNETES_PORT_443_TCP"), "tcp://10.96.0.1:443");
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PROTO"), "tcp");
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PORT"), "443");
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), "10.96.0.1");
        assert_eq!(get("MY_DB_SERVICE_PORT"), "5432");
        assert_eq!(get("MY_DB_SERVICE_PORT_DNS"), "53");
        assert_eq!(get("MY_DB_PORT_53_UDP"), "udp://10.96.0.9:53");
        assert!(!env.iter().any(|(k, _)| k.starts_with("HEADLESS")));
        // The same Service listed twice (its namespace is `default`) counts once.
        let twice = service_env(&[services[0].clone(), services[0].clone()]);
        assert_eq!(twice.len(), 8);
    }
}
