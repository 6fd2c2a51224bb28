//! Spec files: eksodus's own YAML, or an eksctl `ClusterConfig` imported field by field. Either way the
//! result is validated as a whole (structure, network layout, VPC CNI capacity) before anything is done, and
//! every problem is named by its field path.

use std::path::Path;

use eksodus_core::spec::{EnvironmentSpec, FieldErrors};

use crate::Error;

/// Where a spec came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// eksodus's own format.
    Eksodus,
    /// An eksctl `ClusterConfig`, imported.
    Eksctl,
}

/// A spec read from text, not yet validated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecFile {
    /// The spec.
    pub spec: EnvironmentSpec,
    /// Its format.
    pub format: Format,
    /// What an eksctl import carried over with a change (for the user to read).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<eksodus_cluster::eksctl::Note>,
}

/// Parses `text` (named `origin` in errors) as either format; an eksctl file with fields eksodus cannot
/// carry over is refused with every such field listed. No validation beyond the structure.
pub fn parse(text: &str, origin: &str) -> Result<SpecFile, Error> {
    if eksodus_cluster::eksctl::is_eksctl(text) {
        let imported = eksodus_cluster::eksctl::import(text)
            .map_err(|message| eksodus_core::Error::Parse { path: String::new(), message })
            .map_err(|e| with_origin(e, origin))?;
        if !imported.unsupported.is_empty() {
            return Err(Error::Unsupported { path: origin.to_string(), fields: imported.unsupported });
        }
        return Ok(SpecFile { spec: imported.spec, format: Format::Eksctl, notes: imported.notes });
    }
    let spec = EnvironmentSpec::from_yaml(text).map_err(|e| with_origin(e, origin))?;
    Ok(SpecFile { spec, format: Format::Eksodus, notes: Vec::new() })
}

fn with_origin(e: eksodus_core::Error, origin: &str) -> Error {
    match e {
        eksodus_core::Error::Parse { path, message } => eksodus_core::Error::Parse {
            path: if path.is_empty() { origin.to_string() } else { format!("{origin}: {path}") },
            message,
        }
        .into(),
        other => other.into(),
    }
}

/// Reads a spec file of either format.
pub fn read(path: impl AsRef<Path>) -> Result<SpecFile, Error> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let mut f = parse(&text, &path.display().to_string())?;
    read_key_files(&mut f.spec, path.parent().unwrap_or(Path::new(".")))?;
    Ok(f)
}

/// Reads each nodegroup's `ssh.public_key_file` into its `public_key`: `~/` is the home directory, a relative
/// path is `base`'s. A file that cannot be read is an error naming the field and the file.
pub fn read_key_files(spec: &mut EnvironmentSpec, base: &Path) -> Result<(), Error> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    for (i, n) in spec.cluster.iter_mut().flat_map(|c| c.nodegroups.iter_mut().enumerate()) {
        let Some(ssh) = n.ssh.as_mut() else { continue };
        let Some(file) = ssh.public_key_file.take() else { continue };
        let path = match (file.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => base.join(&file),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => ssh.public_key = Some(text.trim().to_string()),
            Err(e) => {
                return Err(eksodus_core::Error::Invalid(FieldErrors(vec![eksodus_core::spec::FieldError::new(
                    format!("cluster.nodegroups[{i}].ssh.public_key_file"),
                    format!("`{}` cannot be read: {e}", path.display()),
                )]))
                .into())
            }
        }
    }
    Ok(())
}

/// Every problem of a parsed spec, each with its field path: structure, then (with the `env` feature) the
/// network layout and VPC CNI capacity. Empty when it is fit to plan.
pub fn problems(spec: &EnvironmentSpec) -> Vec<eksodus_core::spec::FieldError> {
    #[cfg(feature = "env")]
    {
        let mut errs = eksodus_net::validate(spec);
        errs.extend(eksodus_access::wellknown::validate(spec));
        errs
    }
    #[cfg(not(feature = "env"))]
    {
        spec.validate()
    }
}

/// Reads and fully validates a spec file of either format: the spec, or every problem at once.
pub fn from_file(path: impl AsRef<Path>) -> Result<EnvironmentSpec, Error> {
    let f = read(path)?;
    validated(f.spec)
}

/// Parses and fully validates spec text of either format.
///
/// ```
/// // eksodus's own format
/// let spec = eksodus::spec::from_str("name: shop\nregion: eu-west-1\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\n")?;
/// assert_eq!(spec.az_names(), ["eu-west-1a", "eu-west-1b"]);
///
/// // an eksctl ClusterConfig, imported field by field
/// let eksctl = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {name: shop, region: eu-west-1, version: '1.33'}\n";
/// assert_eq!(eksodus::spec::from_str(eksctl)?.name, "shop");
///
/// // every problem at once, each with its field path
/// let err = eksodus::spec::from_str("name: Shop_1\nregion: nowhere\nnetwork: {cidr: 10.0.0.0/16, azs: 2}\n").unwrap_err();
/// let text = err.to_string();
/// assert!(text.contains("name") && text.contains("region"), "{text}");
/// # Ok::<_, eksodus::Error>(())
/// ```
pub fn from_str(text: &str) -> Result<EnvironmentSpec, Error> {
    validated(parse(text, "spec")?.spec)
}

/// The spec when it is fit to plan, or every problem at once ([`problems`]).
pub fn validated(spec: EnvironmentSpec) -> Result<EnvironmentSpec, Error> {
    let errs = problems(&spec);
    if errs.is_empty() {
        Ok(spec)
    } else {
        Err(eksodus_core::Error::Invalid(FieldErrors(errs)).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_read_beside_the_spec_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA7e3Xtwqc9C64YrLdSOCNHrhmaoZW7aI5XFFj4JGlpK ops@example";
        std::fs::write(dir.path().join("ops.pub"), format!("{key}\n")).unwrap();
        let spec = |file: &str| {
            format!(
                "name: a\nregion: eu-west-1\nnetwork: {{cidr: 10.0.0.0/16, azs: 2}}\ncluster:\n  version: '1.33'\n  nodegroups:\n    - {{name: ops, instance_types: [m5.large], ssh: {{public_key_file: {file}, source_security_groups: [sg-0123]}}}}\n"
            )
        };
        let path = dir.path().join("env.yaml");
        std::fs::write(&path, spec("ops.pub")).unwrap();
        let s = from_file(&path).unwrap();
        let ssh = s.cluster.unwrap().nodegroups[0].ssh.clone().unwrap();
        assert_eq!((ssh.public_key.as_deref(), ssh.public_key_file), (Some(key), None));
        std::fs::write(&path, spec("missing.pub")).unwrap();
        let e = from_file(&path).unwrap_err().to_string();
        assert!(e.contains("cluster.nodegroups[0].ssh.public_key_file") && e.contains("missing.pub"), "{e}");
        // text alone has no file to read from: the field says so
        let e = from_str(&spec("ops.pub")).unwrap_err().to_string();
        assert!(e.contains("was not read"), "{e}");
    }

    #[test]
    fn both_formats_and_their_errors() {
        let native = "name: a\nregion: eu-west-1\nnetwork:\n  cidr: 10.0.0.0/20\n  azs: 2\n";
        let s = from_str(native).unwrap();
        assert_eq!(s.name, "a");
        let eksctl = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: b\n  region: us-west-2\n  version: \"1.32\"\n";
        let f = parse(eksctl, "c.yaml").unwrap();
        assert_eq!((f.format, f.spec.name.as_str()), (Format::Eksctl, "b"));
        // an unknown field is named with its path and the file
        let e = from_str("name: a\nregion: eu-west-1\nnetwork:\n  cidr: 10.0.0.0/20\n  azs: 2\n  zones: 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("network") && e.contains("zones"), "{e}");
        // an eksctl field eksodus cannot carry is refused by its path
        let un = format!("{eksctl}karpenter:\n  version: 1.2.0\n");
        let e = parse(&un, "c.yaml").unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported { fields, .. } if fields.iter().any(|f| f.path.starts_with("karpenter"))),
            "{e}"
        );
        // a spec that parses but does not fit is every problem at once
        let bad = "name: Bad_Name\nregion: eu-west-1\nnetwork:\n  cidr: 10.0.0.0/27\n  azs: 2\n";
        let e = from_str(bad).unwrap_err().to_string();
        assert!(e.contains("name"), "{e}");
    }
}
