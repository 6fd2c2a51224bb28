//! Conditions from what a reconcile observed: a pure function, so each transition is a unit test. Conditions
//! follow the Kubernetes API conventions: one entry per type, `lastTransitionTime` moves only when `status`
//! does, every entry carries the generation it was computed for.

use crate::crd::{Condition, PlanSummary, SpecError};

/// Condition types, in the order they are listed.
pub const TYPES: [&str; 4] = ["Ready", "Progressing", "Drifted", "Degraded"];

/// What one reconcile found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// `spec.paused`: nothing planned.
    Paused,
    /// The spec failed validation: no AWS call was made.
    Invalid(Vec<SpecError>),
    /// The plan is empty.
    Converged,
    /// The plan is not empty and the mode is `Observe`.
    Drifted(PlanSummary),
    /// The plan is not empty and is being applied; `drift` when the spec had already been converged at this
    /// generation (something changed behind the operator's back).
    Applying {
        /// The plan.
        summary: PlanSummary,
        /// Whether this repairs drift rather than applying a new spec.
        drift: bool,
    },
    /// Planning or applying failed.
    Failed {
        /// A CamelCase reason.
        reason: String,
        /// What failed.
        message: String,
    },
    /// Deletion is running `down`.
    Deleting,
    /// `down` finished, but owned resources remain.
    Leftovers(Vec<String>),
}

/// The conditions after `obs`, from the `previous` ones, at `generation` and time `now` (RFC 3339).
pub fn conditions(previous: &[Condition], obs: &Observation, generation: i64, now: &str) -> Vec<Condition> {
    use Observation::*;
    let keep = |t: &str| -> (String, String, String) {
        previous
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
            .unwrap_or_else(|| ("Unknown".into(), "NotYetReconciled".into(), String::new()))
    };
    let s = |status: &str, reason: &str, message: String| (status.to_string(), reason.to_string(), message);
    let [ready, progressing, drifted, degraded] = match obs {
        Paused => {
            [keep("Ready"), s("False", "Paused", "spec.paused is true".into()), keep("Drifted"), keep("Degraded")]
        }
        Invalid(errs) => {
            let msg = format!(
                "{} problem(s) in the spec: {}",
                errs.len(),
                errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
            );
            [
                s("False", "InvalidSpec", "the spec is invalid; see status.fieldErrors".into()),
                s("False", "InvalidSpec", String::new()),
                s("Unknown", "InvalidSpec", String::new()),
                s("True", "InvalidSpec", msg),
            ]
        }
        Converged => [
            s("True", "Converged", "the environment matches its spec".into()),
            s("False", "Converged", String::new()),
            s("False", "Converged", String::new()),
            s("False", "Converged", String::new()),
        ],
        Drifted(sum) => [
            s("False", "Drifted", "the environment differs from its spec (mode Observe: nothing is changed)".into()),
            s("False", "ObserveOnly", String::new()),
            s("True", "PlanNotEmpty", describe(sum)),
            s("False", "Drifted", String::new()),
        ],
        Applying { summary, drift } => [
            s("False", "Applying", String::new()),
            s("True", "Applying", describe(summary)),
            if *drift { s("True", "Repairing", describe(summary)) } else { s("False", "NewSpec", String::new()) },
            keep("Degraded"),
        ],
        Failed { reason, message } => [
            s("False", reason, message.clone()),
            s("False", reason, String::new()),
            keep("Drifted"),
            s("True", reason, message.clone()),
        ],
        Deleting => [
            s("False", "Deleting", String::new()),
            s("True", "Deleting", "down is removing the environment".into()),
            keep("Drifted"),
            keep("Degraded"),
        ],
        Leftovers(left) => [
            s("False", "Deleting", String::new()),
            s("False", "Leftovers", String::new()),
            keep("Drifted"),
            s("True", "Leftovers", format!("{} owned resource(s) remain: {}", left.len(), left.join(", "))),
        ],
    };
    TYPES
        .iter()
        .zip([ready, progressing, drifted, degraded])
        .map(|(t, (status, reason, message))| {
            let since = previous
                .iter()
                .find(|c| c.type_ == *t && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            Condition {
                type_: t.to_string(),
                status,
                reason,
                message,
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

/// `2 to create, 1 to change` from a plan's counts.
pub fn describe(s: &PlanSummary) -> String {
    let parts: Vec<String> = [
        (s.create, "to create"),
        (s.update, "to change"),
        (s.replace, "to replace"),
        (s.delete, "to delete"),
        (s.deferred, "waiting for a later round"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect();
    if parts.is_empty() {
        "nothing to change".into()
    } else {
        parts.join(", ")
    }
}

/// The condition of type `t`.
pub fn get<'a>(conditions: &'a [Condition], t: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == t)
}

/// Whether the condition `t` is `True`.
pub fn is_true(conditions: &[Condition], t: &str) -> bool {
    get(conditions, t).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(create: u32) -> PlanSummary {
        PlanSummary { create, ..Default::default() }
    }

    #[test]
    fn transition_times_move_only_with_status() {
        let a = conditions(&[], &Observation::Applying { summary: sum(3), drift: false }, 1, "t1");
        assert!(a.iter().all(|c| c.last_transition_time == "t1" && c.observed_generation == 1));
        assert!(is_true(&a, "Progressing") && !is_true(&a, "Ready"));
        let b = conditions(&a, &Observation::Converged, 1, "t2");
        assert_eq!(get(&b, "Ready").unwrap().last_transition_time, "t2");
        assert_eq!(get(&b, "Drifted").unwrap().last_transition_time, "t1", "False before and after");
        let c = conditions(&b, &Observation::Converged, 2, "t3");
        assert_eq!(get(&c, "Ready").unwrap().last_transition_time, "t2");
        assert_eq!(get(&c, "Ready").unwrap().observed_generation, 2);
        assert_eq!(c.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), TYPES);
    }

    #[test]
    fn each_observation_sets_the_conditions_it_means() {
        let invalid = conditions(
            &[],
            &Observation::Invalid(vec![SpecError { field: "spec.environment.region".into(), message: "bad".into() }]),
            1,
            "t",
        );
        assert!(is_true(&invalid, "Degraded") && !is_true(&invalid, "Ready"));
        assert!(get(&invalid, "Degraded").unwrap().message.contains("spec.environment.region: bad"));
        let drift = conditions(&[], &Observation::Drifted(sum(1)), 1, "t");
        assert!(is_true(&drift, "Drifted") && !is_true(&drift, "Progressing"));
        assert_eq!(get(&drift, "Drifted").unwrap().message, "1 to create");
        let repair = conditions(&drift, &Observation::Applying { summary: sum(1), drift: true }, 1, "t");
        assert_eq!(get(&repair, "Drifted").unwrap().reason, "Repairing");
        let failed = conditions(
            &repair,
            &Observation::Failed { reason: "ApplyFailed".into(), message: "VPC limit".into() },
            1,
            "t",
        );
        assert!(is_true(&failed, "Degraded") && is_true(&failed, "Drifted"), "drift is kept while unrepaired");
        let paused = conditions(&failed, &Observation::Paused, 1, "t");
        assert_eq!(get(&paused, "Ready"), get(&failed, "Ready"), "paused keeps what was known");
        let left = conditions(&[], &Observation::Leftovers(vec!["vpc vpc-1".into()]), 1, "t");
        assert!(get(&left, "Degraded").unwrap().message.contains("vpc vpc-1"));
    }

    #[test]
    fn plans_are_described_in_words() {
        assert_eq!(describe(&PlanSummary::default()), "nothing to change");
        let s = PlanSummary { create: 2, update: 1, deferred: 3, ..Default::default() };
        assert_eq!(describe(&s), "2 to create, 1 to change, 3 waiting for a later round");
    }
}
