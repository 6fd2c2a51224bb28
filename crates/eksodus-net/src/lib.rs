//! VPC and VPC CNI networking for eksodus.
//!
//! - [`cni`]: max pods per instance type and the addresses a node takes (pure, bundled data);
//! - [`layout`]: the CIDR planner carving the VPC into subnets per zone and tier (pure);
//! - [`select`]: the instance types a nodegroup's `instance_selector` chooses from EC2's catalogue (pure);
//! - `ec2` (feature `aws`): discovery, desired state, execution and teardown against EC2 through the engine.
//!
//! ```
//! use eksodus_core::spec::EnvironmentSpec;
//! let spec = EnvironmentSpec::from_yaml("name: demo\nregion: eu-west-1\nnetwork: {cidr: 10.0.0.0/16, azs: 3}")?;
//! assert!(eksodus_net::validate(&spec).is_empty());
//! let layout = eksodus_net::layout::plan(&spec)?;
//! assert_eq!(layout.subnets.len(), 6);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

pub mod cni;
#[cfg(feature = "aws")]
pub mod ec2;
mod error;
pub mod layout;
pub mod select;

pub use error::{Error, Result};

use eksodus_core::spec::{EnvironmentSpec, FieldError};

/// Full offline validation of the network part of a spec: core's structural checks, then the instance types
/// (of the demand and of every nodegroup) and whether the layout fits. Every problem is returned, each with its field path.
pub fn validate(spec: &EnvironmentSpec) -> Vec<FieldError> {
    let mut errs = spec.validate();
    if let Some(d) = &spec.network.demand {
        if let Err(e) = cni::limits(&d.instance_type) {
            errs.push(FieldError::new("network.demand.instance_type", e.to_string()));
        }
    }
    let ipv6 = spec.ipv6_cluster();
    for (i, ng) in spec.cluster.iter().flat_map(|c| c.nodegroups.iter()).enumerate() {
        for (j, t) in ng.instance_types.iter().enumerate() {
            match cni::limits(t) {
                Err(e) => {
                    errs.push(FieldError::new(format!("cluster.nodegroups[{i}].instance_types[{j}]"), e.to_string()))
                }
                // IPv6 pods live on a prefix of the primary ENI, which Xen instances do not take (bare metal, which EC2
                // reports without a hypervisor, runs on the Nitro system)
                Ok(l) if ipv6 && l.hypervisor == cni::Hypervisor::Xen => errs.push(FieldError::new(
                    format!("cluster.nodegroups[{i}].instance_types[{j}]"),
                    format!("{t} is not a Nitro instance, and IPv6 clusters run pods only on Nitro instances"),
                )),
                Ok(_) => {}
            }
        }
    }
    // The layout can only be judged once the fields it reads are sound.
    if errs.is_empty() && spec.network.existing.is_none() {
        if let Err(Error::Layout { field, message }) = layout::plan(spec) {
            errs.push(FieldError::new(field, message));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodegroup_instance_types_are_checked() {
        let spec = EnvironmentSpec::from_yaml(
            "name: a\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\ncluster:\n  version: '1.33'\n  nodegroups: [{name: ng, instance_types: [m5.large, m5.enormous]}]\n",
        )
        .unwrap();
        let errs = validate(&spec);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "cluster.nodegroups[0].instance_types[1]");
    }

    #[test]
    fn an_ipv6_cluster_needs_nitro_instances() {
        let text = "name: a\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\ncluster:\n  version: '1.33'\n  ip_family: ipv6\n  nodegroups: [{name: ng, instance_types: [m5.large, m4.large]}]\n";
        let errs = validate(&EnvironmentSpec::from_yaml(text).unwrap());
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["cluster.nodegroups[0].instance_types[1]"], "{errs:?}");
        assert!(errs[0].message.contains("Nitro"), "{}", errs[0].message);
        // an IPv4 cluster runs Xen instances as before
        assert!(validate(&EnvironmentSpec::from_yaml(&text.replace("  ip_family: ipv6\n", "")).unwrap()).is_empty());
    }
}
