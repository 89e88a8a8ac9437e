//! CertificateSigningRequests (`certificates.k8s.io/v1`), as Kubernetes' registry and its
//! `certificates/*` admission plugins treat them: the requester's identity is written into the
//! spec at create (what the client sends there is ignored), the spec is immutable, the request
//! must be a PEM PKCS#10 request whose signature verifies; the `approval` subresource changes
//! only the conditions and needs the `approve` verb on the signer (`certificates.k8s.io`
//! `signers`, by name or `<domain>/*`), the `status` subresource cannot touch the approval and
//! setting the certificate needs `sign`; `kubernetes.io/kube-apiserver-client` does not issue
//! certificates for `system:masters`. Table columns as `kubectl get csr` shows them.

use std::collections::BTreeSet;

use async_trait::async_trait;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rkube_machinery::certificates as certs;
use serde_json::Value;

use crate::auth::{Attributes, Authorizer, Decision, UserInfo};
use crate::error::{ApiError, FieldError};
use crate::registry::store::Sub;
use crate::registry::{Admission, Api, Column, Operation, Strategy, age, human_duration, name};
use crate::resources;

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

/// CertificateSigningRequest behaviour.
pub struct CsrStrategy;

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn has_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    conditions(csr)
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn certificate(csr: &CertificateSigningRequest) -> &[u8] {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map(|c| c.0.as_slice())
        .unwrap_or_default()
}

fn is_approval(c: &CertificateSigningRequestCondition) -> bool {
    c.type_ == APPROVED || c.type_ == DENIED
}

/// Fills the times a client left out: `lastUpdateTime` now, `lastTransitionTime` the stored
/// one while the condition's status stays, else now (Kubernetes' `populateConditionTimestamps`).
fn populate_condition_times(csr: &mut CertificateSigningRequest, old: &CertificateSigningRequest) {
    let now = Time(jiff::Timestamp::now());
    let old_conditions = conditions(old).to_vec();
    let Some(list) = csr.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
        return;
    };
    for c in list {
        if c.last_update_time.is_none() {
            c.last_update_time = Some(now.clone());
        }
        if c.last_transition_time.is_none() {
            c.last_transition_time = old_conditions
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
                .and_then(|o| o.last_transition_time.clone())
                .or_else(|| Some(now.clone()));
        }
    }
}

/// The CONDITION column: `Approved,Issued`, `Pending`, `Denied`, `Approved,Failed`.
fn condition_summary(csr: &CertificateSigningRequest) -> String {
    let mut out = if has_condition(csr, DENIED) {
        DENIED.to_string()
    } else if has_condition(csr, APPROVED) {
        APPROVED.to_string()
    } else {
        "Pending".to_string()
    };
    if has_condition(csr, FAILED) {
        out.push_str(",Failed");
    }
    if !certificate(csr).is_empty() {
        out.push_str(",Issued");
    }
    out
}

/// Whether `signer` is `<domain>/<path>` with a fully qualified domain.
fn valid_signer_name(signer: &str) -> Result<(), &'static str> {
    let Some((domain, path)) = signer.split_once('/') else {
        return Err(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() > 253 || domain.split('.').count() < 2 || !domain.split('.').all(label_ok) {
        return Err("the domain must be a fully qualified domain name, e.g. 'example.com'");
    }
    if path.is_empty() || path.len() > 571 || path.contains(char::is_whitespace) {
        return Err("the path must be a non-empty string of at most 571 characters without spaces");
    }
    Ok(())
}

impl CsrStrategy {
    fn validate_status(csr: &CertificateSigningRequest) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, c) in conditions(csr).iter().enumerate() {
            let field = format!("status.conditions[{i}]");
            if c.type_.is_empty() {
                errs.push(FieldError::required(format!("{field}.type")));
            }
            if matches!(c.type_.as_str(), APPROVED | DENIED | FAILED)
                && !seen.insert(c.type_.clone())
            {
                errs.push(FieldError::duplicate(format!("{field}.type"), &c.type_));
            }
            match c.status.as_str() {
                "" => errs.push(FieldError::required(format!("{field}.status"))),
                "True" => {}
                "False" | "Unknown" if !is_approval(c) => {}
                other => {
                    let supported: &[&str] = if is_approval(c) {
                        &["True"]
                    } else {
                        &["False", "True", "Unknown"]
                    };
                    errs.push(FieldError::not_supported(
                        format!("{field}.status"),
                        other,
                        supported,
                    ));
                }
            }
        }
        if has_condition(csr, APPROVED) && has_condition(csr, DENIED) {
            errs.push(FieldError::invalid(
                "status.conditions",
                "Approved,Denied",
                "Approved and Denied conditions are mutually exclusive",
            ));
        }
        let cert = certificate(csr);
        if !cert.is_empty()
            && let Err(e) = certs::check_certificate_pem(cert)
        {
            errs.push(FieldError::invalid(
                "status.certificate",
                "<certificate data>",
                &e.to_string(),
            ));
        }
        errs
    }

    /// Whether `user` holds `verb` on the signer (`signers` named `signer` or `<domain>/*`).
    async fn may(api: &Api, user: &UserInfo, verb: &str, signer: &str) -> bool {
        let authorizer = Authorizer {
            rbac: api.rbac.clone(),
        };
        let mut names = vec![signer.to_string()];
        if let Some((domain, _)) = signer.split_once('/') {
            names.push(format!("{domain}/*"));
        }
        for n in names {
            let attrs = Attributes {
                verb: verb.to_string(),
                resource_request: true,
                api_group: resources::CERTIFICATESIGNINGREQUESTS.group.to_string(),
                resource: "signers".into(),
                name: n,
                ..Default::default()
            };
            if let Decision::Allow(_) = authorizer.authorize(api, user, &attrs).await {
                return true;
            }
        }
        false
    }

    /// `certificatesigningrequests.certificates.k8s.io "x" is forbidden: <why>`.
    fn forbidden(name: &str, why: &str) -> ApiError {
        let def = &resources::CERTIFICATESIGNINGREQUESTS;
        ApiError::forbidden_object(def.group, def.resource, name, why)
    }
}

#[async_trait]
impl Strategy<CertificateSigningRequest> for CsrStrategy {
    fn prepare_update(&self, csr: &mut CertificateSigningRequest, old: &CertificateSigningRequest) {
        // The spec never changes after create (Kubernetes resets it silently).
        csr.spec = old.spec.clone();
    }

    fn prepare_subresource_update(
        &self,
        sub: Sub,
        csr: &mut CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) {
        match sub {
            Sub::Approval => {
                // Only the conditions change through approval.
                let wanted = csr.status.as_ref().and_then(|s| s.conditions.clone());
                let mut status = old.status.clone().unwrap_or_default();
                status.conditions = wanted;
                csr.status = Some(status);
            }
            Sub::Status => {
                // The approval stays as it is: Approved/Denied come from the stored object.
                let mut list: Vec<CertificateSigningRequestCondition> = conditions(csr)
                    .iter()
                    .filter(|c| !is_approval(c))
                    .cloned()
                    .collect();
                list.extend(conditions(old).iter().filter(|c| is_approval(c)).cloned());
                let status = csr.status.get_or_insert_with(Default::default);
                status.conditions = (!list.is_empty()).then_some(list);
            }
            _ => return,
        }
        populate_condition_times(csr, old);
    }

    fn validate(&self, csr: &CertificateSigningRequest) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = &csr.spec;
        if spec.request.0.is_empty() {
            errs.push(FieldError::required("spec.request"));
        } else if let Err(e) = certs::parse_request(&spec.request.0) {
            errs.push(FieldError::invalid(
                "spec.request",
                "<certificate request data>",
                &e.to_string(),
            ));
        }
        if spec.signer_name.is_empty() {
            errs.push(FieldError::required("spec.signerName"));
        } else if spec.signer_name == certs::LEGACY_UNKNOWN {
            errs.push(FieldError::invalid(
                "spec.signerName",
                &spec.signer_name,
                "the legacy signerName is not allowed via this API version",
            ));
        } else if let Err(why) = valid_signer_name(&spec.signer_name) {
            errs.push(FieldError::invalid(
                "spec.signerName",
                &spec.signer_name,
                why,
            ));
        }
        let usages = spec.usages.as_deref().unwrap_or_default();
        if usages.is_empty() {
            errs.push(FieldError::required_msg(
                "spec.usages",
                "usages must be provided",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, u) in usages.iter().enumerate() {
            if !certs::USAGES.contains(&u.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("spec.usages[{i}]"),
                    u,
                    certs::USAGES,
                ));
            } else if !seen.insert(u.as_str()) {
                errs.push(FieldError::duplicate(format!("spec.usages[{i}]"), u));
            }
        }
        if let Some(s) = spec.expiration_seconds
            && s < certs::MIN_EXPIRATION_SECONDS
        {
            errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                s,
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
        errs.extend(Self::validate_status(csr));
        errs
    }

    fn validate_update(
        &self,
        new: &CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for t in [APPROVED, DENIED, FAILED] {
            if has_condition(old, t) && !has_condition(new, t) {
                errs.push(FieldError::forbidden(
                    "status.conditions",
                    &format!("updates may not remove a condition of type {t:?}"),
                ));
            }
        }
        let (was, is) = (certificate(old), certificate(new));
        if !was.is_empty() && was != is {
            errs.push(FieldError::invalid(
                "status.certificate",
                "<certificate data>",
                "updates may not modify existing certificate content",
            ));
        }
        errs
    }

    async fn admit(
        &self,
        api: &Api,
        adm: &mut Admission<'_, CertificateSigningRequest>,
    ) -> Result<(), ApiError> {
        let csr_name = name(adm.obj);
        if adm.op == Operation::Create {
            // Who asks is who the API server says, not what the client wrote.
            let spec = &mut adm.obj.spec;
            match adm.user {
                Some(u) => {
                    spec.username = Some(u.username.clone());
                    spec.uid = (!u.uid.is_empty()).then(|| u.uid.clone());
                    spec.groups = (!u.groups.is_empty()).then(|| u.groups.clone());
                    spec.extra = (!u.extra.is_empty()).then(|| u.extra.clone());
                }
                None => {
                    spec.username = None;
                    spec.uid = None;
                    spec.groups = None;
                    spec.extra = None;
                }
            }
            // certificates/subjectrestriction.
            if spec.signer_name == certs::KUBE_APISERVER_CLIENT
                && let Ok(req) = certs::parse_request(&spec.request.0)
                && req.organizations.iter().any(|o| o == crate::auth::MASTERS)
            {
                return Err(Self::forbidden(
                    &csr_name,
                    "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed",
                ));
            }
            return Ok(());
        }
        let Some(user) = adm.user else {
            return Ok(());
        };
        let signer = adm.obj.spec.signer_name.clone();
        // certificates/approval: every approval update; certificates/signing: a status
        // update that sets the certificate.
        let verb = match adm.sub {
            Sub::Approval => "approve",
            Sub::Status
                if adm
                    .old
                    .is_some_and(|old| certificate(old) != certificate(adm.obj)) =>
            {
                "sign"
            }
            _ => return Ok(()),
        };
        if !Self::may(api, user, verb, &signer).await {
            return Err(Self::forbidden(
                &csr_name,
                &format!("user not permitted to {verb} requests with signerName {signer:?}"),
            ));
        }
        Ok(())
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::AGE,
            Column::new(
                "SignerName",
                "string",
                "Name of the signer that should sign the certificate.",
            ),
            Column::new(
                "Requestor",
                "string",
                "Name of the user who made the request.",
            ),
            Column::new(
                "RequestedDuration",
                "string",
                "The validity the request asks for.",
            ),
            Column::new("Condition", "string", "The approval and issuance state."),
        ]
    }

    fn cells(&self, csr: &CertificateSigningRequest) -> Vec<Value> {
        let signer = if csr.spec.signer_name.is_empty() {
            "<none>".to_string()
        } else {
            csr.spec.signer_name.clone()
        };
        let duration = csr
            .spec
            .expiration_seconds
            .map_or_else(|| "<none>".to_string(), |s| human_duration(i64::from(s)));
        vec![
            Value::String(name(csr)),
            age(csr),
            Value::String(signer),
            Value::String(csr.spec.username.clone().unwrap_or_default()),
            Value::String(duration),
            Value::String(condition_summary(csr)),
        ]
    }

    fn fields(&self, csr: &CertificateSigningRequest, out: &mut crate::registry::Fields) {
        out.insert("spec.signerName".into(), csr.spec.signer_name.clone());
    }

    fn field_names(&self) -> &'static [&'static str] {
        &["spec.signerName"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestSpec, CertificateSigningRequestStatus,
    };

    fn csr(usages: &[&str]) -> CertificateSigningRequest {
        let key = rcgen::KeyPair::generate().unwrap();
        let pem =
            certs::request_pem(&key, "system:node:n1", &["system:nodes".into()], &[], &[]).unwrap();
        CertificateSigningRequest {
            metadata: Default::default(),
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: certs::KUBE_APISERVER_CLIENT_KUBELET.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                ..Default::default()
            },
            status: None,
        }
    }

    fn cond(t: &str, status: &str) -> CertificateSigningRequestCondition {
        CertificateSigningRequestCondition {
            type_: t.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn with_conditions(
        mut c: CertificateSigningRequest,
        list: Vec<CertificateSigningRequestCondition>,
    ) -> CertificateSigningRequest {
        c.status = Some(CertificateSigningRequestStatus {
            conditions: Some(list),
            certificate: None,
        });
        c
    }

    fn fields(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn validates_requests_like_kubernetes() {
        let s = CsrStrategy;
        assert!(s.validate(&csr(&["client auth"])).is_empty());
        let mut bad = csr(&[]);
        bad.spec.request = ByteString(b"not a request".to_vec());
        bad.spec.signer_name = String::new();
        bad.spec.expiration_seconds = Some(60);
        assert_eq!(
            fields(&s.validate(&bad)),
            [
                "spec.request",
                "spec.signerName",
                "spec.usages",
                "spec.expirationSeconds"
            ]
        );
        let mut c = csr(&["client auth", "client auth", "flying"]);
        c.spec.signer_name = "nodomain".into();
        assert_eq!(
            fields(&s.validate(&c)),
            ["spec.signerName", "spec.usages[1]", "spec.usages[2]"]
        );
        c.spec.signer_name = certs::LEGACY_UNKNOWN.into();
        assert!(fields(&s.validate(&c)).contains(&"spec.signerName"));
        c.spec.signer_name = "example.com/my-signer".into();
        assert_eq!(
            fields(&s.validate(&c)),
            ["spec.usages[1]", "spec.usages[2]"]
        );

        let both = with_conditions(
            csr(&["client auth"]),
            vec![cond(APPROVED, "True"), cond(DENIED, "True")],
        );
        assert_eq!(fields(&s.validate(&both)), ["status.conditions"]);
        let dup = with_conditions(
            csr(&["client auth"]),
            vec![cond(APPROVED, "True"), cond(APPROVED, "True")],
        );
        assert_eq!(fields(&s.validate(&dup)), ["status.conditions[1].type"]);
        let false_approval = with_conditions(csr(&["client auth"]), vec![cond(APPROVED, "False")]);
        assert_eq!(
            fields(&s.validate(&false_approval)),
            ["status.conditions[0].status"]
        );
    }

    #[test]
    fn subresources_change_only_their_part() {
        let s = CsrStrategy;
        let old = with_conditions(csr(&["client auth"]), vec![cond(APPROVED, "True")]);
        // approval: only conditions; the certificate stays.
        let mut new = old.clone();
        new.spec.username = Some("mallory".into());
        new.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![cond(APPROVED, "True"), cond(FAILED, "True")]),
            certificate: Some(ByteString(b"x".to_vec())),
        });
        s.prepare_update(&mut new, &old);
        s.prepare_subresource_update(Sub::Approval, &mut new, &old);
        assert_eq!(new.spec, old.spec);
        assert!(certificate(&new).is_empty());
        assert_eq!(conditions(&new).len(), 2);
        assert!(conditions(&new)[0].last_update_time.is_some());
        // status: the approval comes from the stored object.
        let mut new = old.clone();
        new.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![cond(DENIED, "True")]),
            certificate: None,
        });
        s.prepare_subresource_update(Sub::Status, &mut new, &old);
        assert!(has_condition(&new, APPROVED) && !has_condition(&new, DENIED));
        // Removing the approval or replacing a certificate is refused.
        let cleared = csr(&["client auth"]);
        assert_eq!(
            fields(&s.validate_update(&cleared, &old)),
            ["status.conditions"]
        );
        let mut issued = old.clone();
        issued.status.as_mut().unwrap().certificate = Some(ByteString(b"a".to_vec()));
        let mut changed = issued.clone();
        changed.status.as_mut().unwrap().certificate = Some(ByteString(b"b".to_vec()));
        assert_eq!(
            fields(&s.validate_update(&changed, &issued)),
            ["status.certificate"]
        );
    }

    #[test]
    fn table_cells() {
        let s = CsrStrategy;
        let mut c = csr(&["client auth"]);
        c.spec.username = Some("system:bootstrap:abcdef".into());
        c.spec.expiration_seconds = Some(3600);
        let cells = s.cells(&c);
        assert_eq!(cells.len(), s.columns().len());
        assert_eq!(cells[2], certs::KUBE_APISERVER_CLIENT_KUBELET);
        assert_eq!(cells[3], "system:bootstrap:abcdef");
        assert_eq!(cells[4], "60m");
        assert_eq!(cells[5], "Pending");
        let mut done = with_conditions(c, vec![cond(APPROVED, "True")]);
        done.status.as_mut().unwrap().certificate = Some(ByteString(b"x".to_vec()));
        assert_eq!(s.cells(&done)[5], "Approved,Issued");
        let denied = with_conditions(csr(&["client auth"]), vec![cond(DENIED, "True")]);
        assert_eq!(s.cells(&denied)[5], "Denied");
        assert_eq!(s.cells(&denied)[4], "<none>");
    }
}
