//! The `kubernetes` Service in `default`: how pods reach the API server. Its ClusterIP is the
//! first address of the service range (port 443, `https`), and its Endpoints and EndpointSlice
//! (both named `kubernetes`, without a selector, so no controller touches them) name the API
//! server's advertised address and port — as Kubernetes' own API server keeps them, re-checked
//! every 10 seconds so a deleted or edited object comes back.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::{Api, Sub, WriteOptions};
use crate::resources::{self, ResourceDef};

/// The Service's (and its endpoints') name.
pub const NAME: &str = "kubernetes";
/// Its namespace.
pub const NAMESPACE: &str = "default";
/// How often the objects are re-checked.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The Service: ClusterIP `ip`, port 443 to the API server's port.
pub fn service(ip: IpAddr, target_port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip.to_string(),
            "sessionAffinity": "None",
            "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": target_port}],
        },
    })
}

/// The Endpoints: the advertised address.
pub fn endpoints(advertise: SocketAddr) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{
            "addresses": [{"ip": advertise.ip().to_string()}],
            "ports": [{"name": "https", "port": advertise.port(), "protocol": "TCP"}],
        }],
    })
}

/// The EndpointSlice: the advertised address.
pub fn endpoint_slice(advertise: SocketAddr) -> Value {
    let family = if advertise.is_ipv4() { "IPv4" } else { "IPv6" };
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME},
        },
        "addressType": family,
        "endpoints": [{"addresses": [advertise.ip().to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": advertise.port(), "protocol": "TCP"}],
    })
}

/// The fields of `desired` (other than metadata) and its labels, as `stored` should have them;
/// `None` when `stored` already has them.
fn reconciled(stored: &Value, desired: &Value) -> Option<Value> {
    let mut out = stored.clone();
    let mut changed = false;
    for (k, v) in desired.as_object().into_iter().flatten() {
        if k == "metadata" || k == "apiVersion" || k == "kind" {
            continue;
        }
        // The Service's spec: only what we own (its ClusterIP is immutable, and the allocator
        // fills in more fields).
        if k == "spec" {
            for (sk, sv) in v.as_object().into_iter().flatten() {
                if out["spec"][sk] != *sv {
                    out["spec"][sk] = sv.clone();
                    changed = true;
                }
            }
            continue;
        }
        if out[k] != *v {
            out[k] = v.clone();
            changed = true;
        }
    }
    for (k, v) in desired["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if out["metadata"]["labels"][k] != *v {
            out["metadata"]["labels"][k] = v.clone();
            changed = true;
        }
    }
    changed.then_some(out)
}

/// Creates the object `desired` of kind `def`, or brings the stored one back to it.
async fn ensure(api: &Api, def: &'static ResourceDef, desired: Value) -> Result<(), ApiError> {
    let kind = api
        .kind(def)
        .ok_or_else(|| ApiError::internal(format!("{} not served", def.resource)))?;
    let opts = WriteOptions {
        field_manager: Some("kube-apiserver".into()),
        ..Default::default()
    };
    match kind.get(api, Some(NAMESPACE), NAME).await {
        Ok(raw) => {
            let stored: Value = serde_json::from_slice(&raw)
                .map_err(|e| ApiError::internal(format!("stored {}: {e}", def.resource)))?;
            if reconciled(&stored, &desired).is_none() {
                return Ok(());
            }
            let mutate = |cur: &Value| Ok(reconciled(cur, &desired).unwrap_or_else(|| cur.clone()));
            kind.update(api, Some(NAMESPACE), NAME, Sub::Main, &opts, &mutate)
                .await?;
            tracing::info!(resource = def.resource, "restored default/kubernetes");
        }
        Err(e) if e.code == 404 => match kind.create(api, Some(NAMESPACE), desired, &opts).await {
            Ok(_) => tracing::info!(resource = def.resource, "created default/kubernetes"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    }
    Ok(())
}

/// One pass: the Service (its ClusterIP is the first of the range, or `None`: no Service) and,
/// when the address is known, its endpoints.
pub async fn reconcile(
    api: &Api,
    advertise: Option<SocketAddr>,
    api_port: u16,
) -> Result<(), ApiError> {
    if let Some(ip) = api.settings.service_cidr.hosts().next() {
        ensure(api, &resources::SERVICES, service(IpAddr::V4(ip), api_port)).await?;
    }
    if let Some(addr) = advertise {
        ensure(api, &resources::ENDPOINTS, endpoints(addr)).await?;
        ensure(api, &resources::ENDPOINTSLICES, endpoint_slice(addr)).await?;
    }
    Ok(())
}

/// Keeps the objects as [`reconcile`] makes them, every [`INTERVAL`].
pub fn spawn(
    api: Arc<Api>,
    advertise: Option<SocketAddr>,
    api_port: u16,
) -> tokio::task::JoinHandle<()> {
    if advertise.is_none() {
        tracing::warn!(
            "no --advertise-address (the API server listens on loopback only): the \
             `kubernetes` Service has no endpoints and pods cannot reach the API"
        );
    }
    tokio::spawn(async move {
        loop {
            if let Err(e) = reconcile(&api, advertise, api_port).await {
                tracing::warn!(error = %e, "cannot reconcile the kubernetes Service");
            }
            tokio::time::sleep(INTERVAL).await;
        }
    })
}

/// The address pods reach the API server at: `configured`, else the listener's when it is a
/// single address other than loopback, else none.
pub fn advertise_address(configured: Option<IpAddr>, listen: SocketAddr) -> Option<SocketAddr> {
    let ip = configured.or_else(|| {
        let ip = listen.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    })?;
    Some(SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_is_never_loopback_or_unspecified() {
        let l: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        assert_eq!(advertise_address(None, l), None);
        let any: SocketAddr = "0.0.0.0:7443".parse().unwrap();
        assert_eq!(advertise_address(None, any), None);
        assert_eq!(
            advertise_address(Some("10.0.0.5".parse().unwrap()), any),
            Some("10.0.0.5:7443".parse().unwrap())
        );
        let one: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        assert_eq!(advertise_address(None, one), Some(one));
    }

    #[test]
    fn only_owned_fields_are_restored() {
        let desired = service("10.96.0.1".parse().unwrap(), 6443);
        let mut stored = desired.clone();
        stored["metadata"]["resourceVersion"] = json!("7");
        stored["metadata"]["labels"]["extra"] = json!("kept");
        stored["spec"]["clusterIPs"] = json!(["10.96.0.1"]);
        assert_eq!(reconciled(&stored, &desired), None);
        stored["spec"]["ports"][0]["targetPort"] = json!(1234);
        let fixed = reconciled(&stored, &desired).unwrap();
        assert_eq!(fixed["spec"]["ports"][0]["targetPort"], 6443);
        assert_eq!(fixed["metadata"]["labels"]["extra"], "kept");
        assert_eq!(fixed["spec"]["clusterIPs"][0], "10.96.0.1");
        let ep = endpoints("10.0.0.5:6443".parse().unwrap());
        let mut moved = ep.clone();
        moved["subsets"][0]["addresses"][0]["ip"] = json!("10.0.0.6");
        assert_eq!(
            reconciled(&moved, &ep).unwrap()["subsets"][0]["addresses"][0]["ip"],
            "10.0.0.5"
        );
    }
}
