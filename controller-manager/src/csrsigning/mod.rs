//! The csrsigning controller: signs the approved (and not denied, failed or already issued)
//! CertificateSigningRequests of the `kubernetes.io/*` signers with the cluster CA
//! (`--cluster-signing-cert-file`, `--cluster-signing-key-file`) and writes the certificate
//! through the `status` subresource, as Kubernetes' signers do: each signer checks first that
//! the request is one it may sign (`kube-apiserver-client-kubelet`: a kubelet client
//! certificate; `kubelet-serving`: a kubelet serving certificate with DNS or IP SANs;
//! `kube-apiserver-client`: client auth usages) — a request it may not sign, or cannot, gets a
//! `Failed` condition with the reason. A certificate lives `spec.expirationSeconds` (at least
//! ten minutes) capped by `--cluster-signing-duration`, and never beyond the CA.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, Client};
use rkube_machinery::certificates::{self as certs, CertificateAuthority, CertificateRequest};

use crate::Shared;
use crate::csr::{self, ACCOUNT};
use crate::runner::{Wiring, is_not_found};

/// The controller's name.
pub const NAME: &str = "csrsigning-controller";

/// The shortest validity given (twice the backdating), as Kubernetes'.
const MIN_VALIDITY: Duration = Duration::from_secs(600);

/// The validity of a certificate: the requested one within [ten minutes, `ttl`], else `ttl`.
pub fn validity(ttl: Duration, expiration_seconds: Option<i32>) -> Duration {
    match expiration_seconds {
        None => ttl,
        Some(s) => Duration::from_secs(u64::try_from(s).unwrap_or(0))
            .max(MIN_VALIDITY)
            .min(ttl),
    }
}

/// Whether this controller signs for `signer`.
pub fn signs_for(signer: &str) -> bool {
    matches!(
        signer,
        certs::KUBE_APISERVER_CLIENT_KUBELET
            | certs::KUBELET_SERVING
            | certs::KUBE_APISERVER_CLIENT
    )
}

/// The signer's own rule for a request (Kubernetes' `isKubeletClient`, `isKubeletServing`,
/// `isKubeAPIServerClient`): `Err` with the reason it may not be signed.
pub fn check(signer: &str, req: &CertificateRequest, usages: &[String]) -> Result<(), String> {
    let usages_ok = |required: &str| {
        if csr::usages_within(
            usages,
            &[required],
            &["digital signature", "key encipherment"],
        ) {
            Ok(())
        } else {
            Err(format!(
                "usages {usages:?} must include {required:?} and otherwise only \"digital signature\" and \"key encipherment\""
            ))
        }
    };
    let node_subject = || {
        if req.organizations != ["system:nodes"] {
            return Err(format!(
                "subject organization must be exactly [\"system:nodes\"], not {:?}",
                req.organizations
            ));
        }
        if !req.common_name().starts_with("system:node:") || req.common_names.len() != 1 {
            return Err(format!(
                "subject common name must begin with \"system:node:\", not {:?}",
                req.common_name()
            ));
        }
        Ok(())
    };
    match signer {
        certs::KUBE_APISERVER_CLIENT_KUBELET => {
            node_subject()?;
            if req.has_sans() {
                return Err(
                    "subjectAltNames are not allowed in kubelet client certificates".into(),
                );
            }
            usages_ok("client auth")
        }
        certs::KUBELET_SERVING => {
            node_subject()?;
            if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
                return Err("a DNS or IP subjectAltName is required".into());
            }
            if !req.email_addresses.is_empty() || !req.uris.is_empty() {
                return Err("only DNS and IP subjectAltNames are allowed".into());
            }
            usages_ok("server auth")
        }
        certs::KUBE_APISERVER_CLIENT => usages_ok("client auth"),
        other => Err(format!("signer {other:?} is not handled here")),
    }
}

/// What a reconcile needs.
pub struct Ctx {
    /// The API (as the certificate controller's ServiceAccount).
    pub client: Client,
    /// The signing CA.
    pub ca: CertificateAuthority,
    /// `--cluster-signing-duration`.
    pub ttl: Duration,
}

/// Why a request could not be handled.
#[derive(Debug, thiserror::Error)]
#[error("certificatesigningrequest {name}: writing the status: {source}")]
pub struct Error {
    name: String,
    #[source]
    source: kube::Error,
}

/// Signs `csr` if it is approved, ours and not yet issued; records a failure as `Failed`.
pub async fn reconcile(
    obj: Arc<CertificateSigningRequest>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let signer = obj.spec.signer_name.as_str();
    if !signs_for(signer)
        || !csr::is_approved(&obj)
        || csr::has_failed(&obj)
        || csr::is_issued(&obj)
    {
        return Ok(Action::await_change());
    }
    let usages = csr::usages(&obj);
    let signed = csr::request(&obj)
        .map_err(|e| e.to_string())
        .and_then(|req| {
            check(signer, &req, usages)?;
            let ttl = validity(ctx.ttl, obj.spec.expiration_seconds);
            ctx.ca
                .sign(&req, usages, ttl)
                .map_err(|e| format!("cannot sign: {e}"))
        });
    let mut next = (*obj).clone();
    match &signed {
        Ok(pem) => {
            next.status.get_or_insert_with(Default::default).certificate =
                Some(ByteString(pem.clone().into_bytes()));
        }
        Err(why) => {
            tracing::warn!(csr = %name, signer, reason = %why, "not signing");
            csr::add_condition(&mut next, "Failed", "SignerValidationFailure", why);
        }
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    match api
        .replace_status(&name, &PostParams::default(), &next)
        .await
    {
        Ok(_) => {
            if signed.is_ok() {
                tracing::info!(csr = %name, signer, requester = ?obj.spec.username, "signed");
            }
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(source) => Err(Error { name, source }),
    }
}

/// Builds the controller over every CSR with the CA `ca`.
pub fn start(shared: &Shared, ca: CertificateAuthority) -> BoxFuture<'static, ()> {
    let csrs = shared.informers.all::<CertificateSigningRequest>();
    let wiring = Wiring::new(NAME, &shared.metrics, &csrs);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        ca,
        ttl: shared.config.cluster_signing_duration,
    });
    let controller = wiring.controller(&csrs);
    Box::pin(wiring.run(controller, 2, ctx, reconcile, shared.shutdown()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn req(cn: &str, orgs: &[&str], dns: &[&str], ips: &[&str]) -> CertificateRequest {
        let key = certs::KeyPair::generate().unwrap();
        let orgs: Vec<String> = orgs.iter().map(|s| s.to_string()).collect();
        let dns: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
        let ips: Vec<IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
        let pem = certs::request_pem(&key, cn, &orgs, &dns, &ips).unwrap();
        certs::parse_request(pem.as_bytes()).unwrap()
    }

    fn u(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn validity_is_bounded() {
        let year = Duration::from_secs(8760 * 3600);
        assert_eq!(validity(year, None), year);
        assert_eq!(validity(year, Some(3600)), Duration::from_secs(3600));
        assert_eq!(validity(year, Some(60)), Duration::from_secs(600));
        assert_eq!(validity(year, Some(i32::MAX)), year);
        assert_eq!(validity(year, Some(-5)), Duration::from_secs(600));
    }

    #[test]
    fn each_signer_checks_its_requests() {
        let client = u(&["digital signature", "key encipherment", "client auth"]);
        let serving = u(&["digital signature", "server auth"]);
        let node = req("system:node:n1", &["system:nodes"], &[], &[]);
        assert!(check(certs::KUBE_APISERVER_CLIENT_KUBELET, &node, &client).is_ok());
        assert!(check(certs::KUBE_APISERVER_CLIENT_KUBELET, &node, &serving).is_err());
        let admin = req("admin", &["system:masters"], &[], &[]);
        let e = check(certs::KUBE_APISERVER_CLIENT_KUBELET, &admin, &client).unwrap_err();
        assert!(e.contains("organization"), "{e}");
        let with_san = req("system:node:n1", &["system:nodes"], &["n1"], &["10.0.0.5"]);
        assert!(check(certs::KUBE_APISERVER_CLIENT_KUBELET, &with_san, &client).is_err());
        assert!(check(certs::KUBELET_SERVING, &with_san, &serving).is_ok());
        let e = check(certs::KUBELET_SERVING, &node, &serving).unwrap_err();
        assert!(e.contains("subjectAltName"), "{e}");
        assert!(check(certs::KUBELET_SERVING, &with_san, &client).is_err());
        let proxy = req("system:kube-proxy", &[], &[], &[]);
        assert!(check(certs::KUBE_APISERVER_CLIENT, &proxy, &u(&["client auth"])).is_ok());
        assert!(check(certs::KUBE_APISERVER_CLIENT, &proxy, &u(&["server auth"])).is_err());
        assert!(signs_for(certs::KUBELET_SERVING));
        assert!(!signs_for("example.com/mine"));
        assert!(!signs_for(certs::LEGACY_UNKNOWN));
    }
}
