//! `completionMode: Indexed` (Kubernetes' `indexed_job_utils.go`): each pod gets a completion
//! index in `[0, completions)` — the annotation and label `batch.kubernetes.io/job-completion-index`,
//! the `JOB_COMPLETION_INDEX` variable in every container, the host name `<job>-<index>` — and
//! the Job succeeds once every index has a succeeded pod, listed in `status.completedIndexes`
//! as intervals (`0-2,5`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};

/// The annotation (and label) holding a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The variable containers read their index from.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The pod's completion index, if it has a valid one below `completions`.
pub fn index_of(pod: &Pod, completions: i32) -> Option<i32> {
    let i: i32 = pod
        .metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()?;
    (0..completions).contains(&i).then_some(i)
}

/// Parses `completedIndexes` (`1,3-5`), keeping the indexes below `completions`.
pub fn parse(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
            out.extend((a.max(0)..=b).take_while(|i| *i < completions));
        }
    }
    out
}

/// Formats indexes as `completedIndexes` does: ascending intervals, `a-b` for runs of more
/// than one.
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().expect("peeked");
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// The first `n` indexes neither succeeded nor held by an active pod (`firstPendingIndexes`).
pub fn pending(
    completions: i32,
    succeeded: &BTreeSet<i32>,
    active: &[Arc<Pod>],
    n: usize,
) -> Vec<i32> {
    let running: BTreeSet<i32> = active
        .iter()
        .filter_map(|p| index_of(p, completions))
        .collect();
    (0..completions)
        .filter(|i| !succeeded.contains(i) && !running.contains(i))
        .take(n)
        .collect()
}

/// Active pods that must go whatever the parallelism: those without a valid index, and all
/// but the oldest pod of an index held twice (`appendDuplicatedIndexPodsForRemoval`).
pub fn invalid_or_duplicate(active: &[Arc<Pod>], completions: i32) -> Vec<Arc<Pod>> {
    let mut out = Vec::new();
    let mut by_index: BTreeMap<i32, Vec<Arc<Pod>>> = BTreeMap::new();
    for p in active {
        match index_of(p, completions) {
            Some(i) => by_index.entry(i).or_default().push(p.clone()),
            None => out.push(p.clone()),
        }
    }
    for (_, mut pods) in by_index {
        pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        out.extend(pods.into_iter().skip(1));
    }
    out
}

/// Gives a pod of job `job_name` its index (`addCompletionIndexAnnotation`,
/// `addCompletionIndexEnvVariables`, the index label, the host name).
pub fn decorate(pod: &mut Pod, job_name: &str, index: i32) {
    let meta = &mut pod.metadata;
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.into(), index.to_string());
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.into(), index.to_string());
    let prefix = format!("{job_name}-{index}-");
    if prefix.len() <= 58 {
        meta.generate_name = Some(prefix);
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.hostname.is_none() {
        let host = format!("{job_name}-{index}");
        if host.len() <= 63 {
            spec.hostname = Some(host);
        }
    }
    let var = EnvVar {
        name: INDEX_ENV.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                api_version: None,
            }),
            ..Default::default()
        }),
    };
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        let env = c.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.name == INDEX_ENV) {
            env.push(var.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn pod(index: Option<&str>, age: i64) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                annotations: index.map(|i| [(COMPLETION_INDEX.to_string(), i.to_string())].into()),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(1_000_000 - age).unwrap(),
                )),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[test]
    fn completed_indexes_round_trip_as_intervals() {
        let s: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format(&s), "0-2,4,6-7");
        assert_eq!(parse("0-2,4,6-7", 10), s);
        assert_eq!(
            parse("0-2,4,6-7", 5),
            [0, 1, 2, 4].into(),
            "only below completions"
        );
        assert_eq!(format(&BTreeSet::new()), "");
        assert!(parse("", 3).is_empty());
    }

    #[test]
    fn pending_indexes_skip_succeeded_and_running_ones() {
        let active = vec![pod(Some("1"), 0)];
        assert_eq!(pending(5, &[0].into(), &active, 2), [2, 3]);
        assert_eq!(pending(3, &[0, 2].into(), &active, 5), Vec::<i32>::new());
    }

    #[test]
    fn invalid_and_duplicated_indexes_are_removed_keeping_the_oldest() {
        let old = pod(Some("1"), 100);
        let young = pod(Some("1"), 1);
        let none = pod(None, 5);
        let out_of_range = pod(Some("7"), 5);
        let ok = pod(Some("0"), 5);
        let remove = invalid_or_duplicate(
            &[young.clone(), ok, none.clone(), old, out_of_range.clone()],
            3,
        );
        assert_eq!(remove.len(), 3);
        for p in [&young, &none, &out_of_range] {
            assert!(remove.iter().any(|r| Arc::ptr_eq(r, p)));
        }
    }

    #[test]
    fn pods_get_their_index_everywhere() {
        let mut p = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        decorate(&mut p, "pi", 2);
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX],
            "2"
        );
        assert_eq!(p.metadata.labels.as_ref().unwrap()[COMPLETION_INDEX], "2");
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, INDEX_ENV);
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(index_of(&p, 3), Some(2));
        assert_eq!(index_of(&p, 2), None);
    }
}
