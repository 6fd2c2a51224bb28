//! VPC and VPC CNI networking for eksodus.
//!
//! - [`cni`]: max pods per instance type and the addresses a node takes (pure, bundled data);
//! - [`layout`]: the CIDR planner carving the VPC into subnets per zone and tier (pure);
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

pub use error::{Error, Result};

use eksodus_core::spec::{EnvironmentSpec, FieldError};

/// Full offline validation of the network part of a spec: core's structural checks, then the instance type
/// and whether the layout fits. Every problem is returned, each with its field path.
pub fn validate(spec: &EnvironmentSpec) -> Vec<FieldError> {
    let mut errs = spec.validate();
    if let Some(d) = &spec.network.demand {
        if let Err(e) = cni::limits(&d.instance_type) {
            errs.push(FieldError::new("network.demand.instance_type", e.to_string()));
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
