//! The scheduler's configuration file, in the shape of Kubernetes'
//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`): profiles with their
//! scheduler names, plugins enabled and disabled per extension point (and `multiPoint`),
//! score weights, per-plugin args (`scoringStrategy` of NodeResourcesFit, …), the backoff
//! bounds, `percentageOfNodesToScore`, `parallelism` and leader election. Without a file the
//! defaults apply: one profile `default-scheduler` with every in-tree plugin, and
//! NodeResourcesFit scoring with **MostAllocated** (bin-packing).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The scheduler name pods get when they name none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Why a configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML or JSON does not match the schema.
    #[error("parsing scheduler configuration: {0}")]
    Parse(String),
    /// A value is invalid.
    #[error("invalid scheduler configuration: {0}")]
    Invalid(String),
    /// A plugin is not known.
    #[error("profile {profile}: unknown plugin {plugin:?}")]
    UnknownPlugin {
        /// The profile.
        profile: String,
        /// The plugin.
        plugin: String,
    },
    /// A plugin's args could not be read.
    #[error("plugin {plugin}: invalid args: {message}")]
    PluginArgs {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

/// A duration written as Go does (`15s`, `1m30s`, `500ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses `1h2m3.5s`, `250ms`, `10us`, `0`.
    pub fn parse(s: &str) -> Result<Self, String> {
        rkube_machinery::duration::parse_go(s).map(GoDuration)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A plugin in a plugin set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRef {
    /// The plugin's name (`*` in `disabled` means every default plugin).
    pub name: String,
    /// The score weight (Score and multiPoint only; 0 or absent means the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// Plugins enabled and disabled at one extension point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    /// Enabled, in order (after the defaults that are kept).
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Disabled defaults.
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// The plugins of a profile per extension point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugins {
    /// Enabled at every extension point the plugin implements.
    #[serde(default)]
    pub multi_point: PluginSet,
    /// Queue ordering (only `PrioritySort`).
    #[serde(default)]
    pub queue_sort: PluginSet,
    /// PreFilter.
    #[serde(default)]
    pub pre_filter: PluginSet,
    /// Filter.
    #[serde(default)]
    pub filter: PluginSet,
    /// PostFilter.
    #[serde(default)]
    pub post_filter: PluginSet,
    /// PreScore.
    #[serde(default)]
    pub pre_score: PluginSet,
    /// Score.
    #[serde(default)]
    pub score: PluginSet,
    /// Bind.
    #[serde(default)]
    pub bind: PluginSet,
    /// Accepted and ignored (extension points rkube does not have).
    #[serde(default, flatten)]
    pub other: HashMap<String, serde_json::Value>,
}

/// Args for one plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginConfig {
    /// The plugin.
    pub name: String,
    /// Its args (the plugin reads them).
    #[serde(default)]
    pub args: serde_json::Value,
}

/// One scheduling profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Pods with this `spec.schedulerName` are scheduled by this profile.
    #[serde(default = "default_scheduler_name")]
    pub scheduler_name: String,
    /// Overrides the global percentage for this profile.
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Plugin sets (merged with the defaults).
    #[serde(default)]
    pub plugins: Plugins,
    /// Plugin args.
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

fn default_scheduler_name() -> String {
    DEFAULT_SCHEDULER_NAME.into()
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            scheduler_name: default_scheduler_name(),
            percentage_of_nodes_to_score: None,
            plugins: Plugins::default(),
            plugin_config: Vec::new(),
        }
    }
}

/// Leader election settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderElection {
    /// Whether to elect a leader (also set by `--leader-elect`).
    #[serde(default)]
    pub leader_elect: bool,
    /// How long a lease lasts.
    #[serde(default = "d15s")]
    pub lease_duration: GoDuration,
    /// How long the leader keeps trying to renew.
    #[serde(default = "d10s")]
    pub renew_deadline: GoDuration,
    /// How often to retry.
    #[serde(default = "d2s")]
    pub retry_period: GoDuration,
    /// The Lease's namespace.
    #[serde(default = "kube_system")]
    pub resource_namespace: String,
    /// The Lease's name.
    #[serde(default = "kube_scheduler")]
    pub resource_name: String,
}

fn d15s() -> GoDuration {
    GoDuration(Duration::from_secs(15))
}
fn d10s() -> GoDuration {
    GoDuration(Duration::from_secs(10))
}
fn d2s() -> GoDuration {
    GoDuration(Duration::from_secs(2))
}
fn kube_system() -> String {
    "kube-system".into()
}
fn kube_scheduler() -> String {
    "kube-scheduler".into()
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            leader_elect: false,
            lease_duration: d15s(),
            renew_deadline: d10s(),
            retry_period: d2s(),
            resource_namespace: kube_system(),
            resource_name: kube_scheduler(),
        }
    }
}

/// `KubeSchedulerConfiguration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerConfiguration {
    /// `kubescheduler.config.k8s.io/v1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `KubeSchedulerConfiguration`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Threads used for filtering and scoring (0: the machine's cores).
    #[serde(default)]
    pub parallelism: i32,
    /// Share of the nodes to find feasible before scoring (0: adaptive, as Kubernetes: 50%
    /// minus 1% per 125 nodes, at least 5%, and at least 100 nodes).
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    /// First backoff after a failed attempt, in seconds.
    #[serde(default = "one")]
    pub pod_initial_backoff_seconds: i64,
    /// Backoff cap, in seconds.
    #[serde(default = "ten")]
    pub pod_max_backoff_seconds: i64,
    /// Longest an unschedulable pod waits before it is retried anyway, in seconds.
    #[serde(default = "sixty")]
    pub pod_max_in_unschedulable_pods_seconds: i64,
    /// Leader election.
    #[serde(default)]
    pub leader_election: LeaderElection,
    /// Profiles (one default profile when empty).
    #[serde(default)]
    pub profiles: Vec<Profile>,
    /// Accepted and ignored (clientConnection, …).
    #[serde(default, flatten)]
    pub other: HashMap<String, serde_json::Value>,
}

fn one() -> i64 {
    1
}
fn ten() -> i64 {
    10
}
fn sixty() -> i64 {
    60
}

impl Default for SchedulerConfiguration {
    fn default() -> Self {
        SchedulerConfiguration {
            api_version: Some("kubescheduler.config.k8s.io/v1".into()),
            kind: Some("KubeSchedulerConfiguration".into()),
            parallelism: 0,
            percentage_of_nodes_to_score: None,
            pod_initial_backoff_seconds: 1,
            pod_max_backoff_seconds: 10,
            pod_max_in_unschedulable_pods_seconds: 60,
            leader_election: LeaderElection::default(),
            profiles: vec![Profile::default()],
            other: HashMap::new(),
        }
    }
}

impl SchedulerConfiguration {
    /// Reads a YAML (or JSON) file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Parses YAML (JSON is YAML), fills defaults and validates.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        // Through serde_json::Value so that `args` keep arbitrary shapes.
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut cfg: SchedulerConfiguration =
            serde_json::from_value(value).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if cfg.profiles.is_empty() {
            cfg.profiles.push(Profile::default());
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values and profile names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(v) = &self.api_version
            && v != "kubescheduler.config.k8s.io/v1"
        {
            return Err(ConfigError::Invalid(format!(
                "apiVersion {v:?} is not kubescheduler.config.k8s.io/v1"
            )));
        }
        if let Some(k) = &self.kind
            && k != "KubeSchedulerConfiguration"
        {
            return Err(ConfigError::Invalid(format!(
                "kind {k:?} is not KubeSchedulerConfiguration"
            )));
        }
        if self.parallelism < 0 {
            return Err(ConfigError::Invalid("parallelism must be 0 or more".into()));
        }
        let pct_ok = |p: Option<i32>| p.is_none_or(|p| (0..=100).contains(&p));
        if !pct_ok(self.percentage_of_nodes_to_score)
            || self
                .profiles
                .iter()
                .any(|p| !pct_ok(p.percentage_of_nodes_to_score))
        {
            return Err(ConfigError::Invalid(
                "percentageOfNodesToScore must be between 0 and 100".into(),
            ));
        }
        if self.pod_initial_backoff_seconds <= 0
            || self.pod_max_backoff_seconds < self.pod_initial_backoff_seconds
        {
            return Err(ConfigError::Invalid(
                "podInitialBackoffSeconds must be positive and at most podMaxBackoffSeconds".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.profiles {
            if p.scheduler_name.is_empty() {
                return Err(ConfigError::Invalid(
                    "a profile has no schedulerName".into(),
                ));
            }
            if !names.insert(p.scheduler_name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "duplicate profile schedulerName {:?}",
                    p.scheduler_name
                )));
            }
        }
        Ok(())
    }

    /// Backoff bounds.
    pub fn backoff(&self) -> (Duration, Duration) {
        (
            Duration::from_secs(self.pod_initial_backoff_seconds as u64),
            Duration::from_secs(self.pod_max_backoff_seconds as u64),
        )
    }

    /// The number of threads for filtering and scoring.
    pub fn threads(&self) -> usize {
        if self.parallelism > 0 {
            self.parallelism as usize
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// How many nodes to find feasible before scoring (Kubernetes' `numFeasibleNodesToFind`).
pub fn num_feasible_nodes_to_find(percentage: Option<i32>, all_nodes: usize) -> usize {
    const MIN_FEASIBLE_NODES: usize = 100;
    const MIN_PERCENTAGE: i64 = 5;
    let pct = i64::from(percentage.unwrap_or(0));
    if all_nodes < MIN_FEASIBLE_NODES || pct >= 100 {
        return all_nodes;
    }
    let pct = if pct == 0 {
        (50 - all_nodes as i64 / 125).max(MIN_PERCENTAGE)
    } else {
        pct
    };
    let n = all_nodes * pct as usize / 100;
    n.max(MIN_FEASIBLE_NODES)
}

/// Kubernetes' `mergePluginSet`: defaults minus the disabled ones (all with `*`), custom
/// entries replacing defaults of the same name in place, other custom entries appended.
pub fn merge_plugin_set(defaults: &[PluginRef], custom: &PluginSet) -> Vec<PluginRef> {
    let all_disabled = custom.disabled.iter().any(|p| p.name == "*");
    let mut replaced = std::collections::HashSet::new();
    let mut out = Vec::new();
    if !all_disabled {
        for d in defaults {
            if custom.disabled.iter().any(|p| p.name == d.name) {
                continue;
            }
            match custom.enabled.iter().position(|c| c.name == d.name) {
                Some(i) => {
                    replaced.insert(i);
                    out.push(custom.enabled[i].clone());
                }
                None => out.push(d.clone()),
            }
        }
    }
    for (i, c) in custom.enabled.iter().enumerate() {
        if !replaced.contains(&i) {
            out.push(c.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let cases = [
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1.5s", 1_500),
            ("1h", 3_600_000),
            ("0", 0),
        ];
        for (s, ms) in cases {
            assert_eq!(GoDuration::parse(s).unwrap().0.as_millis(), ms, "{s}");
        }
        for bad in ["", "15", "1x", "s"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_has_one_profile() {
        let cfg = SchedulerConfiguration::from_yaml("{}").unwrap();
        assert_eq!(cfg.profiles.len(), 1);
        assert_eq!(cfg.profiles[0].scheduler_name, "default-scheduler");
        assert_eq!(
            cfg.backoff(),
            (Duration::from_secs(1), Duration::from_secs(10))
        );
        assert_eq!(cfg.pod_max_in_unschedulable_pods_seconds, 60);
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: /etc/kubeconfig
leaderElection:
  leaderElect: true
  leaseDuration: 4s
  renewDeadline: 3s
  retryPeriod: 500ms
percentageOfNodesToScore: 100
podInitialBackoffSeconds: 2
podMaxBackoffSeconds: 20
profiles:
- schedulerName: default-scheduler
  plugins:
    score:
      disabled:
      - name: ImageLocality
      enabled:
      - name: NodeResourcesFit
        weight: 5
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: LeastAllocated
        resources:
        - name: cpu
          weight: 2
- schedulerName: spread
"#;
        let cfg = SchedulerConfiguration::from_yaml(text).unwrap();
        assert!(cfg.leader_election.leader_elect);
        assert_eq!(
            cfg.leader_election.retry_period.0,
            Duration::from_millis(500)
        );
        assert_eq!(cfg.percentage_of_nodes_to_score, Some(100));
        assert_eq!(cfg.profiles.len(), 2);
        let p = &cfg.profiles[0];
        assert_eq!(p.plugins.score.disabled[0].name, "ImageLocality");
        assert_eq!(p.plugins.score.enabled[0].weight, Some(5));
        assert_eq!(
            p.plugin_config[0].args["scoringStrategy"]["type"],
            "LeastAllocated"
        );
        assert_eq!(cfg.profiles[1].scheduler_name, "spread");
    }

    #[test]
    fn invalid_files_are_rejected() {
        let cases = [
            "kind: Pod",
            "apiVersion: v1",
            "podInitialBackoffSeconds: 0",
            "percentageOfNodesToScore: 101",
            "profiles: [{schedulerName: a}, {schedulerName: a}]",
            "profiles: [{plugins: {score: {enabled: [{name: X}], bogus: 1}}}]",
            "[1, 2",
        ];
        for text in cases {
            assert!(
                SchedulerConfiguration::from_yaml(text).is_err(),
                "{text} should be rejected"
            );
        }
    }

    #[test]
    fn feasible_nodes_to_find_follows_kubernetes() {
        assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(None, 100), 100);
        assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(None, 10_000), 500);
        assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
        assert_eq!(num_feasible_nodes_to_find(Some(1), 5000), 100);
    }

    #[test]
    fn plugin_sets_merge_like_kubernetes() {
        let r = |n: &str, w: Option<i32>| PluginRef {
            name: n.into(),
            weight: w,
        };
        let defaults = [r("A", Some(1)), r("B", Some(2)), r("C", None)];
        let custom = PluginSet {
            enabled: vec![r("X", None), r("B", Some(7))],
            disabled: vec![r("C", None)],
        };
        assert_eq!(
            merge_plugin_set(&defaults, &custom),
            vec![r("A", Some(1)), r("B", Some(7)), r("X", None)]
        );
        let all_off = PluginSet {
            enabled: vec![r("X", None)],
            disabled: vec![r("*", None)],
        };
        assert_eq!(merge_plugin_set(&defaults, &all_off), vec![r("X", None)]);
    }
}
