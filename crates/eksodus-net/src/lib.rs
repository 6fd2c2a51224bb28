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
    for (i, ng) in spec.cluster.iter().flat_map(|c| c.nodegroups.iter()).enumerate() {
        for (j, t) in ng.instance_types.iter().enumerate() {
            if let Err(e) = cni::limits(t) {
                errs.push(FieldError::new(format!("cluster.nodegroups[{i}].instance_types[{j}]"), e.to_string()));
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
}
