//! User data of the launch templates eksodus makes for managed nodegroups: plain functions over data.
//!
//! For a managed nodegroup on an EKS AMI, EKS merges its own bootstrap configuration with the template's user
//! data, which therefore only adds to it:
//!
//! - **Amazon Linux 2023** reads a MIME multi-part document (EKS rejects other formats for managed
//!   nodegroups). `nodeadm` merges every `application/node.eks.aws` part into one `NodeConfig`
//!   (`node.eks.aws/v1alpha1`) and cloud-init runs each `text/x-shellscript` part before the node joins.
//!   Sources: the EKS user guide, "Customize managed nodes with launch templates" (the MIME requirement), and
//!   the `nodeadm` documentation of amazon-eks-ami (`NodeConfig`, its `kubelet.config` and the merge).
//! - **Bottlerocket** reads TOML settings, merged with the ones EKS writes (cluster name, endpoint, CA).
//!   Source: Bottlerocket's settings reference (`settings.kubernetes.max-pods`). Bottlerocket has no shell
//!   on the host, so commands before bootstrap are refused for it by spec validation.
//!
//! What eksodus writes: the kubelet's max pods when the spec's CNI mode makes EKS's default wrong (prefix
//! delegation or custom networking, where EKS's ENI formula counts the wrong addresses), and the user's
//! commands. With neither, there is no user data at all.

/// The OS family of a nodegroup's AMI, as its user data format follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Amazon Linux 2023 (`nodeadm`, MIME multi-part).
    Al2023,
    /// Bottlerocket (TOML settings).
    Bottlerocket,
    /// Anything else (Amazon Linux 2, Windows): eksodus writes no user data for it.
    Other,
}

impl Family {
    /// The family of an EKS AMI type (`AL2023_x86_64_STANDARD`, `BOTTLEROCKET_ARM_64`, ...).
    pub fn of(ami_type: &str) -> Family {
        if ami_type.starts_with("AL2023") {
            Family::Al2023
        } else if ami_type.starts_with("BOTTLEROCKET") {
            Family::Bottlerocket
        } else {
            Family::Other
        }
    }

    /// The device of the volume the nodes' containers and images live on: the root volume, except on
    /// Bottlerocket, whose root is a small OS volume and whose data volume is the second device.
    pub fn data_device(self) -> &'static str {
        match self {
            Family::Bottlerocket => "/dev/xvdb",
            _ => "/dev/xvda",
        }
    }
}

/// The boundary of eksodus's MIME documents (fixed, so the same input gives the same bytes).
pub const BOUNDARY: &str = "//EKSODUS-BOUNDARY";

/// What a nodegroup's user data carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSettings<'a> {
    /// The kubelet's max pods, when eksodus sets it.
    pub max_pods: Option<u32>,
    /// Shell commands run before the node joins (Amazon Linux 2023 only).
    pub pre_bootstrap_commands: &'a [String],
}

/// The user data for `family`, or `None` when there is nothing to add to what EKS writes (or the family takes
/// nothing from eksodus).
pub fn render(family: Family, s: &NodeSettings<'_>) -> Option<String> {
    match family {
        Family::Al2023 => al2023(s),
        Family::Bottlerocket => bottlerocket(s),
        Family::Other => None,
    }
}

fn al2023(s: &NodeSettings<'_>) -> Option<String> {
    if s.max_pods.is_none() && s.pre_bootstrap_commands.is_empty() {
        return None;
    }
    let mut out = String::new();
    out.push_str("MIME-Version: 1.0\n");
    out.push_str(&format!("Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\n\n"));
    if let Some(m) = s.max_pods {
        out.push_str(&format!("--{BOUNDARY}\n"));
        out.push_str("Content-Type: application/node.eks.aws\n\n");
        out.push_str("---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n");
        out.push_str(&format!("  kubelet:\n    config:\n      maxPods: {m}\n\n"));
    }
    if !s.pre_bootstrap_commands.is_empty() {
        out.push_str(&format!("--{BOUNDARY}\n"));
        out.push_str("Content-Type: text/x-shellscript; charset=\"us-ascii\"\n\n");
        out.push_str("#!/bin/bash\nset -o errexit -o nounset -o pipefail\n");
        for c in s.pre_bootstrap_commands {
            out.push_str(c.trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!("--{BOUNDARY}--\n"));
    Some(out)
}

fn bottlerocket(s: &NodeSettings<'_>) -> Option<String> {
    let m = s.max_pods?;
    Some(format!("[settings.kubernetes]\nmax-pods = {m}\n"))
}

/// The base64 text EC2 takes as a launch template's `UserData`.
pub fn encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The text of base64 user data (`None` when it is not base64 of UTF-8).
pub fn decode(b64: &str) -> Option<String> {
    use base64::Engine as _;
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Compares with the golden file under `testdata/userdata/`, or rewrites it with `EKSODUS_BLESS=1`.
    fn golden(name: &str, got: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/userdata").join(name);
        if std::env::var_os("EKSODUS_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(got, want, "{name} differs from its golden file (EKSODUS_BLESS=1 rewrites it)");
    }

    /// The parts of a MIME multi-part document: (headers, body), checking the framing RFC 2046 asks for.
    fn mime_parts(doc: &str) -> Vec<(String, String)> {
        let (head, rest) = doc.split_once("\n\n").expect("headers end with an empty line");
        assert!(head.lines().any(|l| l == "MIME-Version: 1.0"), "{head}");
        let ct = head.lines().find(|l| l.starts_with("Content-Type: multipart/mixed;")).expect("multipart/mixed");
        let boundary = ct.split("boundary=\"").nth(1).and_then(|b| b.strip_suffix('"')).expect("quoted boundary");
        assert!(boundary.len() <= 70, "RFC 2046 boundaries are at most 70 characters");
        let close = format!("--{boundary}--\n");
        assert!(rest.ends_with(&close), "ends with the closing delimiter");
        let body = &rest[..rest.len() - close.len()];
        body.split(&format!("--{boundary}\n"))
            .skip(1)
            .map(|p| {
                let (h, b) = p.split_once("\n\n").expect("each part's headers end with an empty line");
                (h.to_string(), b.to_string())
            })
            .collect()
    }

    #[test]
    fn al2023_with_max_pods_and_commands_matches_the_documented_format() {
        let cmds = vec![
            "echo 'net.core.somaxconn = 4096' > /etc/sysctl.d/90-eksodus.conf".to_string(),
            "sysctl --system".into(),
        ];
        let doc = render(Family::Al2023, &NodeSettings { max_pods: Some(110), pre_bootstrap_commands: &cmds }).unwrap();
        golden("al2023-max-pods-and-commands.mime", &doc);
        let parts = mime_parts(&doc);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "Content-Type: application/node.eks.aws");
        let cfg: serde_json::Value = serde_saphyr::from_str(&parts[0].1).expect("the NodeConfig part is YAML");
        assert_eq!(cfg["apiVersion"], "node.eks.aws/v1alpha1");
        assert_eq!(cfg["kind"], "NodeConfig");
        assert_eq!(cfg["spec"]["kubelet"]["config"]["maxPods"], 110);
        assert!(parts[1].0.starts_with("Content-Type: text/x-shellscript"));
        assert!(parts[1].1.starts_with("#!/bin/bash\n"));
        assert!(parts[1].1.contains("sysctl --system\n"));
    }

    #[test]
    fn al2023_with_commands_only_has_one_shell_part() {
        let cmds = vec!["yum install -y amazon-ssm-agent".to_string()];
        let doc = render(Family::Al2023, &NodeSettings { max_pods: None, pre_bootstrap_commands: &cmds }).unwrap();
        golden("al2023-commands.mime", &doc);
        let parts = mime_parts(&doc);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].0.starts_with("Content-Type: text/x-shellscript"));
    }

    #[test]
    fn bottlerocket_sets_max_pods_in_its_settings() {
        let doc =
            render(Family::Bottlerocket, &NodeSettings { max_pods: Some(250), pre_bootstrap_commands: &[] }).unwrap();
        golden("bottlerocket-max-pods.toml", &doc);
        // a table header, then `key = integer`
        let mut lines = doc.lines();
        assert_eq!(lines.next(), Some("[settings.kubernetes]"));
        assert_eq!(lines.next(), Some("max-pods = 250"));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn nothing_to_add_is_no_user_data() {
        let none = NodeSettings::default();
        assert_eq!(render(Family::Al2023, &none), None);
        assert_eq!(render(Family::Bottlerocket, &none), None);
        assert_eq!(render(Family::Other, &NodeSettings { max_pods: Some(20), pre_bootstrap_commands: &[] }), None);
    }

    #[test]
    fn families_and_data_devices() {
        assert_eq!(Family::of("AL2023_ARM_64_STANDARD"), Family::Al2023);
        assert_eq!(Family::of("BOTTLEROCKET_x86_64_NVIDIA"), Family::Bottlerocket);
        assert_eq!(Family::of("AL2_x86_64"), Family::Other);
        assert_eq!(Family::Al2023.data_device(), "/dev/xvda");
        assert_eq!(Family::Bottlerocket.data_device(), "/dev/xvdb");
    }

    #[test]
    fn user_data_round_trips_through_base64() {
        let cmds = vec!["echo ünïcode".to_string()];
        let doc = render(Family::Al2023, &NodeSettings { max_pods: None, pre_bootstrap_commands: &cmds }).unwrap();
        assert_eq!(decode(&encode(&doc)).as_deref(), Some(doc.as_str()));
        assert_eq!(decode("Zm9v\nYmFy").as_deref(), Some("foobar"));
        assert_eq!(decode("Zm9v*"), None);
    }
}
