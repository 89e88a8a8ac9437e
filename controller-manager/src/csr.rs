//! What the certificate controllers (csrapproving, csrsigning) read from a
//! CertificateSigningRequest: its approval state, whether it was issued, its parsed request and
//! its usages; and the conditions they add.

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rkube_machinery::certificates::{self as certs, CertificateError, CertificateRequest};

/// The ServiceAccount (in kube-system) both controllers act as with
/// `--use-service-account-credentials`, as in Kubernetes.
pub const ACCOUNT: &str = "certificate-controller";

/// Whether a condition of `type_` with status `True` is there.
pub fn has_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|l| l.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Approved (and not Denied).
pub fn is_approved(csr: &CertificateSigningRequest) -> bool {
    has_condition(csr, "Approved") && !has_condition(csr, "Denied")
}

/// Approved or Denied: decided.
pub fn is_decided(csr: &CertificateSigningRequest) -> bool {
    has_condition(csr, "Approved") || has_condition(csr, "Denied")
}

/// The signer could not issue it.
pub fn has_failed(csr: &CertificateSigningRequest) -> bool {
    has_condition(csr, "Failed")
}

/// `status.certificate` is set.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// The verified request of `spec.request`.
pub fn request(csr: &CertificateSigningRequest) -> Result<CertificateRequest, CertificateError> {
    certs::parse_request(&csr.spec.request.0)
}

/// `spec.usages`.
pub fn usages(csr: &CertificateSigningRequest) -> &[String] {
    csr.spec.usages.as_deref().unwrap_or_default()
}

/// Whether the usages include every one of `required` and nothing beyond `allowed`.
pub fn usages_within(usages: &[String], required: &[&str], allowed: &[&str]) -> bool {
    required.iter().all(|r| usages.iter().any(|u| u == r))
        && usages
            .iter()
            .all(|u| allowed.contains(&u.as_str()) || required.contains(&u.as_str()))
}

/// Appends a `True` condition of `type_` (now, with `reason` and `message`).
pub fn add_condition(
    csr: &mut CertificateSigningRequest,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let now = Time(jiff::Timestamp::now());
    csr.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: type_.to_string(),
            status: "True".to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now),
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_sets() {
        let u = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let allowed = &["digital signature", "key encipherment"];
        assert!(usages_within(
            &u(&["client auth"]),
            &["client auth"],
            allowed
        ));
        assert!(usages_within(
            &u(&["digital signature", "client auth"]),
            &["client auth"],
            allowed
        ));
        assert!(!usages_within(
            &u(&["digital signature"]),
            &["client auth"],
            allowed
        ));
        assert!(!usages_within(
            &u(&["client auth", "server auth"]),
            &["client auth"],
            allowed
        ));
        let mut c = CertificateSigningRequest::default();
        assert!(!is_decided(&c) && !is_issued(&c) && !has_failed(&c));
        add_condition(&mut c, "Approved", "AutoApproved", "ok");
        assert!(is_approved(&c) && is_decided(&c));
        add_condition(&mut c, "Denied", "No", "no");
        assert!(!is_approved(&c));
    }
}
