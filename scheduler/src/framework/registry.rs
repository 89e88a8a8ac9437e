//! The plugin registry: plugin names mapped to factories that build a plugin from its args
//! (`pluginConfig[].args`), and the default (multiPoint) plugin set with its score weights.
//! Out-of-tree plugins are added with [`Registry::register`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Plugin;
use crate::config::{ConfigError, PluginRef};
use crate::plugins;

/// What plugins may use besides their args: the API client (binding, …).
#[derive(Clone, Default)]
pub struct Handle {
    /// The API client; `None` in tests that never bind through the API.
    pub client: Option<kube::Client>,
}

/// Builds a plugin from its args (`Null` when the profile gives none).
pub type Factory =
    Arc<dyn Fn(&serde_json::Value, &Handle) -> Result<Arc<dyn Plugin>, ConfigError> + Send + Sync>;

/// Plugin factories by name, and the default plugins.
#[derive(Clone)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
    defaults: Vec<PluginRef>,
}

fn r(name: &str, weight: Option<i32>) -> PluginRef {
    PluginRef {
        name: name.into(),
        weight,
    }
}

/// Reads a plugin's args into its args type (`Null` gives the defaults).
pub fn decode_args<T: serde::de::DeserializeOwned + Default>(
    plugin: &str,
    args: &serde_json::Value,
) -> Result<T, ConfigError> {
    if args.is_null() {
        return Ok(T::default());
    }
    let mut args = args.clone();
    if let Some(m) = args.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    serde_json::from_value(args).map_err(|e| ConfigError::PluginArgs {
        plugin: plugin.into(),
        message: e.to_string(),
    })
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry {
            factories: BTreeMap::new(),
            defaults: Vec::new(),
        }
    }

    /// The in-tree plugins, with Kubernetes' default weights (TaintToleration 3, NodeAffinity,
    /// InterPodAffinity and PodTopologySpread 2, NodeResourcesFit and ImageLocality 1).
    pub fn in_tree() -> Self {
        let mut reg = Registry::empty();
        plugins::register_in_tree(&mut reg);
        reg.defaults = vec![
            r(plugins::queue_sort::NAME, None),
            r(plugins::node_unschedulable::NAME, None),
            r(plugins::node_name::NAME, None),
            r(plugins::taint_toleration::NAME, Some(3)),
            r(plugins::node_ready::NAME, None),
            r(plugins::node_affinity::NAME, Some(2)),
            r(plugins::node_ports::NAME, None),
            r(plugins::node_resources_fit::NAME, Some(1)),
            r(plugins::inter_pod_affinity::NAME, Some(2)),
            r(plugins::pod_topology_spread::NAME, Some(2)),
            r(plugins::image_locality::NAME, Some(1)),
            r(plugins::default_preemption::NAME, None),
            r(plugins::default_binder::NAME, None),
        ];
        reg
    }

    /// Adds (or replaces) a plugin factory.
    pub fn register(&mut self, name: &str, factory: Factory) {
        self.factories.insert(name.to_string(), factory);
    }

    /// Sets the default plugins (multiPoint, in order).
    pub fn set_default_plugins(&mut self, defaults: Vec<PluginRef>) {
        self.defaults = defaults;
    }

    /// The default plugins.
    pub fn default_plugins(&self) -> &[PluginRef] {
        &self.defaults
    }

    /// Builds a plugin; `None` if the name is not registered.
    pub fn build(
        &self,
        name: &str,
        args: &serde_json::Value,
        handle: &Handle,
    ) -> Option<Result<Arc<dyn Plugin>, ConfigError>> {
        self.factories.get(name).map(|f| f(args, handle))
    }

    /// Registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::in_tree()
    }
}
