//! Object metadata rules shared by every kind: names and generateName, uid and creation time,
//! what an update may not change, and validation of names, labels, annotations, finalizers and
//! owner references.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rand::Rng;
use rkube_machinery::validation;

use crate::error::FieldError;
use crate::resources::ResourceDef;

/// Characters Kubernetes uses for generated name suffixes (no vowels, no confusables).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix` plus 5 random characters, as Kubernetes' generateName does.
pub fn generate_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHANUMS[rng.random_range(0..ALPHANUMS.len())] as char)
        .collect();
    // Leave room for the suffix within the 253/63 limits.
    let keep = prefix.len().min(58);
    format!("{}{suffix}", &prefix[..keep])
}

/// Now, as a metadata timestamp (whole seconds, like Kubernetes).
pub fn now() -> Time {
    let secs = jiff::Timestamp::now().as_second();
    Time(jiff::Timestamp::from_second(secs).unwrap_or_else(|_| jiff::Timestamp::now()))
}

/// Sets what the server owns on a new object.
pub fn fill_for_create(meta: &mut ObjectMeta, def: &ResourceDef) {
    meta.uid = Some(uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp = Some(now());
    meta.resource_version = None;
    meta.self_link = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.generation = def.has_generation.then_some(1);
}

/// Keeps on an update what clients may not change.
pub fn keep_for_update(new: &mut ObjectMeta, old: &ObjectMeta, def: &ResourceDef) {
    new.uid = old.uid.clone();
    new.creation_timestamp = old.creation_timestamp.clone();
    new.deletion_timestamp = old.deletion_timestamp.clone();
    new.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
    new.generation = if def.has_generation {
        old.generation
    } else {
        None
    };
    new.self_link = None;
    if new.generate_name.is_none() {
        new.generate_name = old.generate_name.clone();
    }
}

fn push_all(out: &mut Vec<FieldError>, field: &str, value: &str, messages: Vec<String>) {
    for m in messages {
        out.push(FieldError::invalid(field, value, &m));
    }
}

/// Validates metadata of an object of `def` (name, namespace, labels, annotations,
/// finalizers, owner references).
pub fn validate(meta: &ObjectMeta, def: &ResourceDef) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match meta.name.as_deref() {
        None | Some("") => errs.push(FieldError::required_msg(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            let problems = if def.name_is_label {
                validation::is_dns1123_label(name)
            } else if def.resource == "events"
                || def.resource == "leases"
                || def.group == "rbac.authorization.k8s.io"
            {
                // Kubernetes only requires these to be valid path segments.
                path_segment_problems(name)
            } else {
                validation::is_dns1123_subdomain(name)
            };
            push_all(&mut errs, "metadata.name", name, problems);
        }
    }
    if def.namespaced {
        match meta.namespace.as_deref() {
            None | Some("") => errs.push(FieldError::required("metadata.namespace")),
            Some(ns) => push_all(
                &mut errs,
                "metadata.namespace",
                ns,
                validation::is_dns1123_label(ns),
            ),
        }
    } else if meta.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(labels) = &meta.labels {
        for m in validation::validate_labels(labels) {
            errs.push(FieldError::invalid("metadata.labels", "", &m));
        }
    }
    if let Some(annotations) = &meta.annotations {
        for m in validation::validate_annotations(annotations) {
            errs.push(FieldError::invalid("metadata.annotations", "", &m));
        }
    }
    if let Some(finalizers) = &meta.finalizers {
        for (i, f) in finalizers.iter().enumerate() {
            push_all(
                &mut errs,
                &format!("metadata.finalizers[{i}]"),
                f,
                validation::is_qualified_name(f),
            );
        }
    }
    if let Some(owners) = &meta.owner_references {
        let mut controllers = 0;
        for (i, o) in owners.iter().enumerate() {
            let path = format!("metadata.ownerReferences[{i}]");
            if o.api_version.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.apiVersion"),
                    "",
                    "version must not be empty",
                ));
            }
            if o.kind.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.kind"),
                    "",
                    "kind must not be empty",
                ));
            }
            if o.name.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.name"),
                    "",
                    "name must not be empty",
                ));
            }
            if o.uid.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.uid"),
                    "",
                    "uid must not be empty",
                ));
            }
            if o.controller == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errs.push(FieldError::invalid(
                "metadata.ownerReferences",
                "",
                "Only one reference can have Controller set to true",
            ));
        }
    }
    errs
}

fn path_segment_problems(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name == "." || name == ".." {
        out.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

/// Validates that an update does not rename or move the object.
pub fn validate_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.name != old.name {
        errs.push(FieldError::immutable(
            "metadata.name",
            new.name.clone().unwrap_or_default(),
        ));
    }
    if new.namespace != old.namespace {
        errs.push(FieldError::immutable(
            "metadata.namespace",
            new.namespace.clone().unwrap_or_default(),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
        assert_ne!(generate_name("web-"), generate_name("web-"));
    }

    #[test]
    fn names_are_validated() {
        let meta = ObjectMeta {
            name: Some("Bad_Name".into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        let errs = validate(&meta, &resources::CONFIGMAPS);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.name");
        let ok = ObjectMeta {
            name: Some("good.name-1".into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        assert!(validate(&ok, &resources::CONFIGMAPS).is_empty());
        // Services need DNS labels: no dots.
        assert!(!validate(&ok, &resources::SERVICES).is_empty());
        // Cluster-scoped objects have no namespace.
        assert!(!validate(&ok, &resources::NODES).is_empty());
    }
}
