//! The csrapproving controller: approves (condition `Approved`, reason `AutoApproved`) the
//! CertificateSigningRequests a joining or running node needs, and leaves every other request
//! pending for a person (`kubectl certificate approve|deny`):
//!
//! - a kubelet client certificate (signer `kubernetes.io/kube-apiserver-client-kubelet`,
//!   subject CN `system:node:<name>` O `system:nodes`, no SANs, usages within digital
//!   signature, key encipherment and client auth) when a SubjectAccessReview says the requester
//!   may `create` `certificatesigningrequests/selfnodeclient` (renewal: the requester is that
//!   node) or `certificatesigningrequests/nodeclient` (a new node, e.g. with a bootstrap
//!   token) — Kubernetes' approver;
//! - rkube's additions, as k3s' server signs these itself: a kubelet serving certificate
//!   (signer `kubernetes.io/kubelet-serving`) requested by the node it names (user
//!   `system:node:<name>` in `system:nodes`, the CN, O `system:nodes`, only DNS and IP SANs,
//!   usages within digital signature, key encipherment and server auth), and the proxy's client
//!   certificate (signer `kubernetes.io/kube-apiserver-client`, subject exactly CN
//!   `system:kube-proxy`, no SANs, client auth) requested by a bootstrap token or a node.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, Client};
use rkube_machinery::certificates::{self as certs, CertificateRequest};

use crate::Shared;
use crate::csr::{self, ACCOUNT};
use crate::runner::{Wiring, is_not_found};

/// The controller's name.
pub const NAME: &str = "csrapproving-controller";

/// The group of kubelets.
const NODES: &str = "system:nodes";
/// The group of bootstrap tokens.
const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The proxy's user.
const PROXY_USER: &str = "system:kube-proxy";
/// How soon a recognized request whose requester was not allowed is reviewed again.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// What a request was recognized as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recognized {
    /// A kubelet client certificate of the requester's own node (renewal).
    SelfNodeClient,
    /// A kubelet client certificate for a new node.
    NodeClient,
    /// A kubelet serving certificate requested by that node.
    KubeletServing,
    /// The proxy's client certificate requested by a joining or joined node.
    Proxy,
}

impl Recognized {
    /// The `certificatesigningrequests` subresource a SubjectAccessReview must allow the
    /// requester to `create` (Kubernetes' approver), if any.
    pub fn permission(self) -> Option<&'static str> {
        match self {
            Recognized::SelfNodeClient => Some("selfnodeclient"),
            Recognized::NodeClient => Some("nodeclient"),
            Recognized::KubeletServing | Recognized::Proxy => None,
        }
    }

    /// The Approved condition's message.
    pub fn message(self) -> &'static str {
        match self {
            Recognized::SelfNodeClient => {
                "Auto approving self kubelet client certificate after SubjectAccessReview."
            }
            Recognized::NodeClient => {
                "Auto approving kubelet client certificate after SubjectAccessReview."
            }
            Recognized::KubeletServing => {
                "Auto approving kubelet serving certificate requested by the node it names."
            }
            Recognized::Proxy => {
                "Auto approving kube-proxy client certificate requested by a node."
            }
        }
    }
}

/// Kubernetes' `ValidateKubeletClientCSR`: CN `system:node:…`, O exactly `system:nodes`, no
/// SANs, client auth (with digital signature and key encipherment at most).
fn is_kubelet_client(req: &CertificateRequest, usages: &[String]) -> bool {
    req.organizations == [NODES]
        && req.common_names.len() == 1
        && req
            .common_name()
            .strip_prefix("system:node:")
            .is_some_and(|n| !n.is_empty())
        && !req.has_sans()
        && csr::usages_within(
            usages,
            &["client auth"],
            &["digital signature", "key encipherment"],
        )
}

/// What `csr` (with its parsed `req`) is, when it is one of the requests approved here (the
/// SubjectAccessReview of [`Recognized::permission`] still to pass); `None` otherwise.
pub fn recognize(csr: &CertificateSigningRequest, req: &CertificateRequest) -> Option<Recognized> {
    let spec = &csr.spec;
    let user = spec.username.as_deref().unwrap_or_default();
    let in_group = |g: &str| spec.groups.iter().flatten().any(|x| x == g);
    let usages = csr::usages(csr);
    match spec.signer_name.as_str() {
        certs::KUBE_APISERVER_CLIENT_KUBELET if is_kubelet_client(req, usages) => {
            if user == req.common_name() {
                Some(Recognized::SelfNodeClient)
            } else {
                Some(Recognized::NodeClient)
            }
        }
        certs::KUBELET_SERVING => {
            let node_requester = user
                .strip_prefix("system:node:")
                .is_some_and(|n| !n.is_empty())
                && in_group(NODES)
                && user == req.common_name();
            let ok = node_requester
                && req.common_names.len() == 1
                && req.organizations == [NODES]
                && !req.other_subject_attributes
                && (!req.dns_names.is_empty() || !req.ip_addresses.is_empty())
                && req.email_addresses.is_empty()
                && req.uris.is_empty()
                && csr::usages_within(
                    usages,
                    &["server auth"],
                    &["digital signature", "key encipherment"],
                );
            ok.then_some(Recognized::KubeletServing)
        }
        certs::KUBE_APISERVER_CLIENT => {
            let ok = (in_group(BOOTSTRAPPERS) || in_group(NODES))
                && req.common_names == [PROXY_USER]
                && req.organizations.is_empty()
                && !req.other_subject_attributes
                && !req.has_sans()
                && csr::usages_within(
                    usages,
                    &["client auth"],
                    &["digital signature", "key encipherment"],
                );
            ok.then_some(Recognized::Proxy)
        }
        _ => None,
    }
}

/// What a reconcile needs.
pub struct Ctx {
    /// The API (as the certificate controller's ServiceAccount).
    pub client: Client,
}

/// Why a request could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SubjectAccessReview failed.
    #[error("certificatesigningrequest {name}: subject access review: {source}")]
    Review {
        /// The CSR.
        name: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The approval could not be written.
    #[error("certificatesigningrequest {name}: approving: {source}")]
    Approve {
        /// The CSR.
        name: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// Whether the requester of `csr` may `create` `certificatesigningrequests/<sub>`.
async fn allowed(
    client: &Client,
    csr: &CertificateSigningRequest,
    sub: &str,
) -> kube::Result<bool> {
    let spec = &csr.spec;
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                subresource: Some(sub.into()),
                verb: Some("create".into()),
                version: Some("*".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &sar)
        .await?;
    Ok(out.status.is_some_and(|s| s.allowed))
}

/// Approves `csr` when it is recognized and (where Kubernetes asks) the requester may.
pub async fn reconcile(
    csr_obj: Arc<CertificateSigningRequest>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    let name = csr_obj.metadata.name.clone().unwrap_or_default();
    if csr::is_issued(&csr_obj) || csr::is_decided(&csr_obj) {
        return Ok(Action::await_change());
    }
    let req = match csr::request(&csr_obj) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(csr = %name, error = %e, "unreadable certificate request; leaving it pending");
            return Ok(Action::await_change());
        }
    };
    let Some(kind) = recognize(&csr_obj, &req) else {
        tracing::debug!(csr = %name, "not a request approved automatically; left pending");
        return Ok(Action::await_change());
    };
    if let Some(sub) = kind.permission() {
        let ok = allowed(&ctx.client, &csr_obj, sub)
            .await
            .map_err(|source| Error::Review {
                name: name.clone(),
                source,
            })?;
        if !ok {
            tracing::info!(csr = %name, permission = sub, requester = ?csr_obj.spec.username,
                "recognized, but the subject access review was not approved; left pending");
            // Asked again later, as Kubernetes requeues it: a binding may be added meanwhile.
            return Ok(Action::requeue(RECHECK));
        }
    }
    let mut approved = (*csr_obj).clone();
    csr::add_condition(&mut approved, "Approved", "AutoApproved", kind.message());
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    match api
        .replace_subresource("approval", &name, &PostParams::default(), &approved)
        .await
    {
        Ok(_) => {
            tracing::info!(csr = %name, requester = ?csr_obj.spec.username, kind = ?kind, "approved");
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(source) => Err(Error::Approve { name, source }),
    }
}

/// Builds the controller over every CSR.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let csrs = shared.informers.all::<CertificateSigningRequest>();
    let wiring = Wiring::new(NAME, &shared.metrics, &csrs);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
    });
    let controller = wiring.controller(&csrs);
    Box::pin(wiring.run(controller, 2, ctx, reconcile, shared.shutdown()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use std::net::IpAddr;

    struct Ask<'a> {
        signer: &'a str,
        user: &'a str,
        groups: &'a [&'a str],
        cn: &'a str,
        orgs: &'a [&'a str],
        dns: &'a [&'a str],
        ips: &'a [&'a str],
        usages: &'a [&'a str],
    }

    fn decide(a: Ask<'_>) -> Option<Recognized> {
        let key = certs::KeyPair::generate().unwrap();
        let orgs: Vec<String> = a.orgs.iter().map(|s| s.to_string()).collect();
        let dns: Vec<String> = a.dns.iter().map(|s| s.to_string()).collect();
        let ips: Vec<IpAddr> = a.ips.iter().map(|s| s.parse().unwrap()).collect();
        let pem = certs::request_pem(&key, a.cn, &orgs, &dns, &ips).unwrap();
        let csr = CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.clone().into_bytes()),
                signer_name: a.signer.into(),
                username: Some(a.user.into()),
                groups: Some(a.groups.iter().map(|s| s.to_string()).collect()),
                usages: Some(a.usages.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        };
        recognize(&csr, &certs::parse_request(pem.as_bytes()).unwrap())
    }

    const CLIENT: &[&str] = &["digital signature", "key encipherment", "client auth"];
    const SERVING: &[&str] = &["digital signature", "key encipherment", "server auth"];

    fn node_client(user: &'static str, groups: &'static [&'static str]) -> Ask<'static> {
        Ask {
            signer: certs::KUBE_APISERVER_CLIENT_KUBELET,
            user,
            groups,
            cn: "system:node:n1",
            orgs: &["system:nodes"],
            dns: &[],
            ips: &[],
            usages: CLIENT,
        }
    }

    #[test]
    fn recognizes_node_client_certificates() {
        let boot = &["system:bootstrappers", "system:authenticated"];
        assert_eq!(
            decide(node_client("system:bootstrap:abcdef", boot)),
            Some(Recognized::NodeClient)
        );
        assert_eq!(
            decide(node_client("system:node:n1", &["system:nodes"])),
            Some(Recognized::SelfNodeClient)
        );
        // Wrong group, a SAN, a server usage, another signer: not approved here.
        let mut a = node_client("system:bootstrap:abcdef", boot);
        a.orgs = &["system:masters"];
        assert_eq!(decide(a), None);
        let mut a = node_client("system:bootstrap:abcdef", boot);
        a.orgs = &["system:nodes", "system:masters"];
        assert_eq!(decide(a), None);
        let mut a = node_client("system:bootstrap:abcdef", boot);
        a.dns = &["n1"];
        assert_eq!(decide(a), None);
        let mut a = node_client("system:bootstrap:abcdef", boot);
        a.usages = SERVING;
        assert_eq!(decide(a), None);
        let mut a = node_client("system:bootstrap:abcdef", boot);
        a.cn = "admin";
        assert_eq!(decide(a), None);
        let mut a = node_client("system:bootstrap:abcdef", boot);
        a.signer = "example.com/other";
        assert_eq!(decide(a), None);
        assert_eq!(Recognized::NodeClient.permission(), Some("nodeclient"));
        assert_eq!(
            Recognized::SelfNodeClient.permission(),
            Some("selfnodeclient")
        );
    }

    #[test]
    fn recognizes_serving_certificates_of_the_node_itself() {
        let serving = |user: &'static str, groups: &'static [&'static str]| Ask {
            signer: certs::KUBELET_SERVING,
            user,
            groups,
            cn: "system:node:n1",
            orgs: &["system:nodes"],
            dns: &["n1"],
            ips: &["10.0.0.5"],
            usages: SERVING,
        };
        assert_eq!(
            decide(serving("system:node:n1", &["system:nodes"])),
            Some(Recognized::KubeletServing)
        );
        assert_eq!(Recognized::KubeletServing.permission(), None);
        // Another node, a bootstrap token, no SAN, a client usage: pending.
        assert_eq!(decide(serving("system:node:n2", &["system:nodes"])), None);
        assert_eq!(
            decide(serving(
                "system:bootstrap:abcdef",
                &["system:bootstrappers"]
            )),
            None
        );
        assert_eq!(decide(serving("system:node:n1", &[])), None);
        let mut a = serving("system:node:n1", &["system:nodes"]);
        a.dns = &[];
        a.ips = &[];
        assert_eq!(decide(a), None);
        let mut a = serving("system:node:n1", &["system:nodes"]);
        a.usages = CLIENT;
        assert_eq!(decide(a), None);
    }

    #[test]
    fn recognizes_the_proxy_certificate_only() {
        let proxy = |cn: &'static str, orgs: &'static [&'static str]| Ask {
            signer: certs::KUBE_APISERVER_CLIENT,
            user: "system:bootstrap:abcdef",
            groups: &["system:bootstrappers"],
            cn,
            orgs,
            dns: &[],
            ips: &[],
            usages: &["client auth"],
        };
        assert_eq!(
            decide(proxy("system:kube-proxy", &[])),
            Some(Recognized::Proxy)
        );
        assert_eq!(decide(proxy("admin", &[])), None);
        assert_eq!(
            decide(proxy("system:kube-proxy", &["system:masters"])),
            None
        );
        let mut a = proxy("system:kube-proxy", &[]);
        a.groups = &["dev"];
        assert_eq!(decide(a), None);
        let mut a = proxy("system:kube-proxy", &[]);
        a.usages = &["server auth"];
        assert_eq!(decide(a), None);
    }
}
