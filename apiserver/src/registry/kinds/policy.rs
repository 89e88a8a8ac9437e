//! PodDisruptionBudgets (policy/v1): how many of a set of pods may be down at once by
//! voluntary disruption (evictions).

use async_trait::async_trait;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::registry::Strategy;

/// PodDisruptionBudget behaviour.
pub struct PodDisruptionBudgetStrategy;

#[async_trait]
impl Strategy<PodDisruptionBudget> for PodDisruptionBudgetStrategy {}
