//! PrioritySort: the queue-sort plugin. The scheduling queue orders pods by priority (highest
//! first), then by the time they were queued; this plugin exists so that configurations naming
//! it (as Kubernetes' do) are accepted. It implements no other extension point.

use crate::framework::Plugin;

/// The plugin's name.
pub const NAME: &str = "PrioritySort";

/// Orders the queue by priority, then arrival (the queue implements the ordering).
#[derive(Default)]
pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
}
