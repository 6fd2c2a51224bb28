//! Kubernetes version upgrades, as plain data: the minor steps from one version to another, and the preflight
//! of each step with a typed report. The reconciler turns the steps into an engine plan (control plane, then
//! addons, then nodegroups, per step) from *discovered* state, so a re-run after a crash continues where the
//! cluster is instead of where a state file says it was.

use std::collections::BTreeMap;

use eksodus_core::spec::{parse_version, KUBERNETES_VERSIONS};
use serde::Serialize;

use crate::addons::Catalogue;

/// The minor versions to pass through from `from` to `to`, `to` included: EKS moves the control plane one minor
/// version per update.
pub fn steps(from: &str, to: &str) -> Result<Vec<String>, String> {
    let (Some((fm, fmin)), Some((tm, tmin))) = (parse_version(from), parse_version(to)) else {
        return Err(format!("`{from}` to `{to}`: versions look like 1.31"));
    };
    if !KUBERNETES_VERSIONS.contains(&to) {
        return Err(format!(
            "`{to}` is not a version EKS offers ({} to {})",
            KUBERNETES_VERSIONS[0],
            KUBERNETES_VERSIONS[KUBERNETES_VERSIONS.len() - 1]
        ));
    }
    if fm != tm || tmin < fmin {
        return Err(format!("the cluster runs {from}; EKS cannot go back to {to}"));
    }
    Ok((fmin + 1..=tmin).map(|m| format!("{fm}.{m}")).collect())
}

/// What the preflight knows of the cluster before a step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterState {
    /// Control-plane version.
    pub version: String,
    /// Control-plane status (`ACTIVE`, `UPDATING`, ...).
    pub status: String,
    /// Nodegroup → Kubernetes version.
    pub nodegroups: BTreeMap<String, String>,
    /// Installed addon → version.
    pub addons: BTreeMap<String, String>,
    /// Cluster subnet → free addresses.
    pub subnet_free: BTreeMap<String, u32>,
    /// APIs the cluster saw requested that the target removes (`group/version resource`), when discoverable
    /// (the API server's `apiserver_requested_deprecated_apis` metric); `None` when it could not be read.
    pub deprecated_apis: Option<Vec<DeprecatedApi>>,
}

/// A deprecated API a client still requests, as the API server's metric reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DeprecatedApi {
    /// API group (empty for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Resource.
    pub resource: String,
    /// The release that removes it (`1.32`), when the metric says.
    pub removed_release: Option<String>,
}

/// Outcome of one preflight check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Pass,
    /// Worth knowing; does not block.
    Warn,
    /// Blocks the step.
    Fail,
    /// Could not be checked.
    Skipped,
}

/// One check of a step's preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Check name (`nodegroup-skew`, `addon-compatibility`, `subnet-addresses`, `deprecated-apis`, ...).
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
}

/// The preflight of one upgrade step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {
    /// The version the step goes from.
    pub from: String,
    /// The version the step goes to.
    pub to: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Preflight {
    /// The failed checks' details.
    pub fn blockers(&self) -> Vec<String> {
        self.checks.iter().filter(|c| c.status == Status::Fail).map(|c| format!("{}: {}", c.name, c.detail)).collect()
    }

    /// Whether nothing blocks the step.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
}

/// Addresses EKS needs free in each cluster subnet to update the control plane (it may create new
/// cross-account ENIs there).
pub const FREE_ADDRESSES_FOR_UPDATE: u32 = 5;

/// Checks one step `state.version` → `to`. `catalogue` is what EKS offers for `to`; `pinned` the addon
/// versions the spec fixes (others move to EKS's default for `to`).
pub fn preflight(
    state: &ClusterState,
    to: &str,
    catalogue: &Catalogue,
    pinned: &BTreeMap<String, String>,
) -> Preflight {
    let mut checks = Vec::new();
    checks.push(if state.status == "ACTIVE" {
        Check { name: "cluster-status", status: Status::Pass, detail: "ACTIVE".into() }
    } else {
        Check {
            name: "cluster-status",
            status: Status::Fail,
            detail: format!("the cluster is {}; EKS updates only ACTIVE clusters", state.status),
        }
    });

    let behind: Vec<String> = state
        .nodegroups
        .iter()
        .filter(|(_, v)| v.as_str() != state.version)
        .map(|(n, v)| format!("{n} at {v}"))
        .collect();
    checks.push(if behind.is_empty() {
        Check {
            name: "nodegroup-skew",
            status: Status::Pass,
            detail: format!("{} nodegroup(s) at {}", state.nodegroups.len(), state.version),
        }
    } else {
        Check {
            name: "nodegroup-skew",
            status: Status::Fail,
            detail: format!(
                "nodegroups must run the control plane's version {} before it moves on: {}",
                state.version,
                behind.join(", ")
            ),
        }
    });

    let mut problems = Vec::new();
    let mut moves = Vec::new();
    for (name, current) in &state.addons {
        match pinned.get(name) {
            Some(v) if !catalogue.is_compatible(name, v) => problems.push(format!(
                "{name} is pinned to {v}, which does not run on {to}; {}",
                catalogue.resolve(name, Some("latest")).map(|l| format!("pin {l} or unpin it")).unwrap_or_else(|e| e)
            )),
            Some(_) => {}
            None => match catalogue.resolve(name, None) {
                Ok(v) if &v != current => moves.push(format!("{name} {current} -> {v}")),
                Ok(_) => {}
                Err(e) => problems.push(e),
            },
        }
    }
    checks.push(if !problems.is_empty() {
        Check { name: "addon-compatibility", status: Status::Fail, detail: problems.join("; ") }
    } else {
        Check {
            name: "addon-compatibility",
            status: Status::Pass,
            detail: if moves.is_empty() { "no addon changes".into() } else { moves.join(", ") },
        }
    });

    let short: Vec<String> = state
        .subnet_free
        .iter()
        .filter(|(_, f)| **f < FREE_ADDRESSES_FOR_UPDATE)
        .map(|(s, f)| format!("{s} has {f}"))
        .collect();
    checks.push(if state.subnet_free.is_empty() {
        Check { name: "subnet-addresses", status: Status::Skipped, detail: "no cluster subnets known".into() }
    } else if short.is_empty() {
        Check {
            name: "subnet-addresses",
            status: Status::Pass,
            detail: format!(
                "every cluster subnet has {FREE_ADDRESSES_FOR_UPDATE}+ free addresses (fewest: {})",
                state.subnet_free.values().min().copied().unwrap_or(0)
            ),
        }
    } else {
        Check {
            name: "subnet-addresses",
            status: Status::Fail,
            detail: format!(
                "EKS needs {FREE_ADDRESSES_FOR_UPDATE} free addresses per cluster subnet: {}",
                short.join(", ")
            ),
        }
    });

    checks.push(match &state.deprecated_apis {
        None => Check {
            name: "deprecated-apis",
            status: Status::Skipped,
            detail: "not discoverable without access to the cluster's API server".into(),
        },
        Some(list) => {
            let removed: Vec<String> = list
                .iter()
                .filter(|a| {
                    let by_metric = a
                        .removed_release
                        .as_deref()
                        .is_some_and(|r| parse_version(r).zip(parse_version(to)).is_some_and(|(r, t)| r <= t));
                    by_metric || removed_in(to).iter().any(|(g, v, _)| *g == a.group && *v == a.version)
                })
                .map(|a| format!("{}/{} {}", if a.group.is_empty() { "core" } else { &a.group }, a.version, a.resource))
                .collect();
            if removed.is_empty() {
                Check {
                    name: "deprecated-apis",
                    status: Status::Pass,
                    detail: format!("no requested API is removed by {to}"),
                }
            } else {
                Check {
                    name: "deprecated-apis",
                    status: Status::Fail,
                    detail: format!("clients still request APIs {to} removes: {}", removed.join(", ")),
                }
            }
        }
    });
    Preflight { from: state.version.clone(), to: to.to_string(), checks }
}

/// Beta APIs removed in a Kubernetes release, as the Kubernetes deprecation guide lists them for the
/// releases EKS offers: (group, version, resources).
pub fn removed_in(release: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match release {
        "1.29" => &[("flowcontrol.apiserver.k8s.io", "v1beta2", "flowschemas, prioritylevelconfigurations")],
        "1.32" => &[("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas, prioritylevelconfigurations")],
        _ => &[],
    }
}

/// Reads the API server's `apiserver_requested_deprecated_apis` gauge from its Prometheus text.
pub fn parse_deprecated_metric(text: &str) -> Vec<DeprecatedApi> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_requested_deprecated_apis{") else { continue };
        let Some((labels, value)) = rest.split_once('}') else { continue };
        if value.trim().parse::<f64>().map_or(true, |v| v == 0.0) {
            continue;
        }
        let mut m = BTreeMap::new();
        for kv in labels.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                m.insert(k.trim(), v.trim().trim_matches('"'));
            }
        }
        out.push(DeprecatedApi {
            group: m.get("group").copied().unwrap_or_default().to_string(),
            version: m.get("version").copied().unwrap_or_default().to_string(),
            resource: m.get("resource").copied().unwrap_or_default().to_string(),
            removed_release: m.get("removed_release").filter(|r| !r.is_empty()).map(|r| r.to_string()),
        });
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addons::AddonVersion;

    #[test]
    fn steps_go_one_minor_at_a_time() {
        assert_eq!(steps("1.31", "1.33").unwrap(), vec!["1.32", "1.33"]);
        assert!(steps("1.31", "1.31").unwrap().is_empty());
        assert!(steps("1.33", "1.31").unwrap_err().contains("cannot go back"));
        assert!(steps("1.31", "1.99").unwrap_err().contains("not a version EKS offers"));
    }

    fn state() -> ClusterState {
        ClusterState {
            version: "1.31".into(),
            status: "ACTIVE".into(),
            nodegroups: [("general".to_string(), "1.31".to_string())].into(),
            addons: [("vpc-cni".to_string(), "v1.19.5-eksbuild.1".to_string())].into(),
            subnet_free: [("subnet-1".to_string(), 200u32)].into(),
            deprecated_apis: None,
        }
    }

    fn catalogue() -> Catalogue {
        Catalogue::new(
            "1.32",
            [(
                "vpc-cni".to_string(),
                vec![AddonVersion {
                    version: "v1.20.1-eksbuild.1".into(),
                    clusters: vec!["1.32".into()],
                    default_for: vec!["1.32".into()],
                }],
            )],
        )
    }

    #[test]
    fn a_clean_cluster_passes_and_lists_addon_moves() {
        let p = preflight(&state(), "1.32", &catalogue(), &BTreeMap::new());
        assert!(p.passed(), "{:?}", p.blockers());
        let addon = p.checks.iter().find(|c| c.name == "addon-compatibility").unwrap();
        assert_eq!(addon.detail, "vpc-cni v1.19.5-eksbuild.1 -> v1.20.1-eksbuild.1");
        assert_eq!(p.checks.iter().find(|c| c.name == "deprecated-apis").unwrap().status, Status::Skipped);
    }

    #[test]
    fn each_blocker_is_named() {
        let mut s = state();
        s.nodegroups.insert("old".into(), "1.30".into());
        s.subnet_free.insert("subnet-2".into(), 3);
        s.deprecated_apis = Some(parse_deprecated_metric(
            "# HELP x\napiserver_requested_deprecated_apis{group=\"flowcontrol.apiserver.k8s.io\",removed_release=\"1.32\",resource=\"flowschemas\",subresource=\"\",version=\"v1beta3\"} 1\n\
             apiserver_requested_deprecated_apis{group=\"\",removed_release=\"\",resource=\"endpoints\",subresource=\"\",version=\"v1\"} 1\n",
        ));
        let pinned = [("vpc-cni".to_string(), "v1.19.5-eksbuild.1".to_string())].into();
        let p = preflight(&s, "1.32", &catalogue(), &pinned);
        let b = p.blockers().join("\n");
        assert!(b.contains("nodegroup-skew") && b.contains("old at 1.30"), "{b}");
        assert!(b.contains("subnet-2 has 3"), "{b}");
        assert!(b.contains("pinned to v1.19.5-eksbuild.1") && b.contains("pin v1.20.1-eksbuild.1"), "{b}");
        assert!(b.contains("flowcontrol.apiserver.k8s.io/v1beta3 flowschemas") && !b.contains("endpoints"), "{b}");
        let mut s = state();
        s.status = "UPDATING".into();
        assert!(preflight(&s, "1.32", &catalogue(), &BTreeMap::new()).blockers()[0].contains("UPDATING"));
    }

    #[test]
    fn the_metric_parser_skips_zero_and_foreign_lines() {
        let m = parse_deprecated_metric(
            "apiserver_requested_deprecated_apis{group=\"a\",version=\"v1beta1\",resource=\"r\"} 0\nother{x=\"1\"} 1\n",
        );
        assert!(m.is_empty());
    }
}
