//! Workload migration for eksodus: read a cluster's objects (a live cluster, a bundle, a directory of
//! manifests), leave out what the target makes by itself, transform what must change, order by dependencies,
//! write a bundle, and apply it to a target with server-side apply, resumably, without ever writing to the
//! source.
//!
//! Pure parts (no IO but files): [`object`], [`filter`], [`transform`], [`order`], [`source`], [`bundle`].
//! With the `kube` feature (default): [`live`] reads a cluster and applies to one, with a dry-run diff, a
//! journal and verification.

pub mod bundle;
pub mod convert;
mod error;
pub mod filter;
pub mod object;
pub mod order;
pub mod source;
pub mod transform;

#[cfg(feature = "kube")]
pub mod live;

pub use error::{Error, Result};
