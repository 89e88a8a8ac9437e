//! `metav1.Condition` lists as Kubernetes keeps them (`meta.SetStatusCondition`): one entry per
//! type, whose transition time moves only when its status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Sets `new` in `conditions`: added if its type is absent; otherwise reason, message and
/// observed generation are replaced, and status and transition time only when the status
/// changes.
pub fn set(conditions: &mut Vec<Condition>, new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => conditions.push(new),
        Some(c) => {
            if c.status != new.status {
                c.status = new.status;
                c.last_transition_time = new.last_transition_time;
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cond(status: &str, reason: &str, at: i64) -> Condition {
        Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(jiff::Timestamp::from_second(at).unwrap()),
        }
    }

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let mut cs = Vec::new();
        set(&mut cs, cond("True", "SufficientPods", 10));
        set(&mut cs, cond("True", "Again", 20));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].reason, "Again");
        assert_eq!(cs[0].last_transition_time.0.as_second(), 10);
        set(&mut cs, cond("False", "InsufficientPods", 30));
        assert_eq!(cs[0].last_transition_time.0.as_second(), 30);
        assert_eq!(cs[0].status, "False");
    }
}
