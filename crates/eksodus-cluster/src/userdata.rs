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
//!
//! A **custom AMI** is different: EKS merges nothing into its user data ("Customize managed nodes with launch
//! templates", the section on specifying an AMI), so the template carries the whole bootstrap
//! ([`Bootstrap`]): the cluster's name, endpoint, CA and service CIDR, and the labels EKS would otherwise set
//! (`eks.amazonaws.com/nodegroup`, `eks.amazonaws.com/nodegroup-image`, `eks.amazonaws.com/capacityType`, which
//! the guide asks a custom AMI's kubelet to register) with the nodegroup's own labels and taints. Amazon Linux
//! 2023 gets a complete `NodeConfig` (`spec.cluster` and kubelet flags), Amazon Linux 2 a shell script running
//! `/etc/eks/bootstrap.sh` (or the user's own command), Bottlerocket its `settings.kubernetes` with
//! `node-labels` and `node-taints` tables (Bottlerocket's settings reference).

/// The OS family of a nodegroup's AMI, as its user data format follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Amazon Linux 2023 (`nodeadm`, MIME multi-part).
    Al2023,
    /// Bottlerocket (TOML settings).
    Bottlerocket,
    /// Amazon Linux 2 (`/etc/eks/bootstrap.sh`): user data only for a custom AMI.
    Al2,
    /// Windows Server: EKS's own bootstrap joins the node (eksodus writes no user data for it, and takes no
    /// custom AMI of it); its root volume is `/dev/sda1`.
    Windows,
    /// Anything else: eksodus writes no user data for it.
    Other,
}

impl Family {
    /// The family of an EKS AMI type (`AL2023_x86_64_STANDARD`, `BOTTLEROCKET_ARM_64`, ...).
    pub fn of(ami_type: &str) -> Family {
        if ami_type.starts_with("AL2023") {
            Family::Al2023
        } else if ami_type.starts_with("BOTTLEROCKET") {
            Family::Bottlerocket
        } else if ami_type.starts_with("AL2_") {
            Family::Al2
        } else if ami_type.starts_with("WINDOWS_") {
            Family::Windows
        } else {
            Family::Other
        }
    }

    /// The device of the volume the nodes' containers and images live on: the root volume, except on
    /// Bottlerocket, whose root is a small OS volume and whose data volume is the second device; Windows's
    /// root is `/dev/sda1` (as eksctl's templates name it).
    pub fn data_device(self) -> &'static str {
        match self {
            Family::Bottlerocket => "/dev/xvdb",
            Family::Windows => "/dev/sda1",
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
    /// Shell commands run before the node joins (Amazon Linux 2023, and Amazon Linux 2 custom AMIs).
    pub pre_bootstrap_commands: &'a [String],
    /// The whole bootstrap, for a custom AMI (EKS merges nothing then).
    pub bootstrap: Option<Bootstrap<'a>>,
    /// Bottlerocket: the user's settings under `settings` (validated: tables, scalars and lists of scalars,
    /// none that eksodus writes), merged into the document.
    pub bottlerocket_settings: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// What a custom AMI's node needs to join: the cluster, and what EKS would have told the kubelet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bootstrap<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// Its API server endpoint (`https://...`).
    pub endpoint: &'a str,
    /// Its CA bundle, base64 as `DescribeCluster` gives it.
    pub certificate_authority: &'a str,
    /// Its service CIDR (the DNS service is its tenth address): IPv4, or IPv6 in an IPv6 cluster.
    pub service_cidr: &'a str,
    /// The node labels, EKS's own for the nodegroup included, in order.
    pub labels: Vec<(String, String)>,
    /// Taints as `key=value:Effect` (the kubelet's spelling).
    pub taints: Vec<String>,
    /// Amazon Linux 2: the user's command instead of `/etc/eks/bootstrap.sh`.
    pub override_command: Option<&'a str>,
}

impl Bootstrap<'_> {
    /// The cluster DNS service's address: the tenth of the service CIDR, as EKS assigns it (in an IPv6
    /// cluster's `fd..::/108` that is `::a`, what Amazon Linux 2's bootstrap script derives too).
    pub fn dns_ip(&self) -> Option<String> {
        use std::net::IpAddr;
        let (net, _) = self.service_cidr.split_once('/')?;
        match net.parse::<IpAddr>().ok()? {
            IpAddr::V4(ip) => Some(std::net::Ipv4Addr::from(u32::from(ip).checked_add(10)?).to_string()),
            IpAddr::V6(ip) => Some(std::net::Ipv6Addr::from(u128::from(ip).checked_add(10)?).to_string()),
        }
    }

    /// Whether the service CIDR is IPv6 (an IPv6 cluster's).
    pub fn ipv6(&self) -> bool {
        self.service_cidr.split_once('/').is_some_and(|(net, _)| net.contains(':'))
    }

    fn label_flag(&self) -> String {
        let l: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("--node-labels={}", l.join(","))
    }
}

/// The kubelet's spelling of an EKS taint effect (`NO_SCHEDULE` -> `NoSchedule`).
pub fn kubelet_effect(effect: &str) -> &'static str {
    match effect {
        "NO_EXECUTE" => "NoExecute",
        "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
        _ => "NoSchedule",
    }
}

/// The user data for `family`, or `None` when there is nothing to add to what EKS writes (or the family takes
/// nothing from eksodus).
pub fn render(family: Family, s: &NodeSettings<'_>) -> Option<String> {
    match family {
        Family::Al2023 => al2023(s),
        Family::Bottlerocket => bottlerocket(s),
        Family::Al2 => s.bootstrap.as_ref().map(|b| al2(s, b)),
        Family::Windows | Family::Other => None,
    }
}

/// A single-quoted shell word.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn al2(s: &NodeSettings<'_>, b: &Bootstrap<'_>) -> String {
    let mut out = String::from("#!/bin/bash\nset -o errexit -o nounset -o pipefail\n");
    for c in s.pre_bootstrap_commands {
        out.push_str(c.trim_end());
        out.push('\n');
    }
    if let Some(o) = b.override_command {
        out.push_str(o.trim_end());
        out.push('\n');
        return out;
    }
    let mut kubelet = vec![b.label_flag()];
    if !b.taints.is_empty() {
        kubelet.push(format!("--register-with-taints={}", b.taints.join(",")));
    }
    if let Some(m) = s.max_pods {
        kubelet.push(format!("--max-pods={m}"));
    }
    out.push_str(&format!(
        "/etc/eks/bootstrap.sh {} --apiserver-endpoint {} --b64-cluster-ca {}",
        sh(b.cluster),
        sh(b.endpoint),
        sh(b.certificate_authority)
    ));
    if b.ipv6() {
        // the script picks the node's IPv6 address for the kubelet only when told the family
        out.push_str(&format!(" --ip-family ipv6 --service-ipv6-cidr {}", b.service_cidr));
    }
    if let Some(dns) = b.dns_ip() {
        out.push_str(&format!(" --dns-cluster-ip {dns}"));
    }
    if s.max_pods.is_some() {
        out.push_str(" --use-max-pods false");
    }
    out.push_str(&format!(" --kubelet-extra-args {}\n", sh(&kubelet.join(" "))));
    out
}

/// A YAML or TOML double-quoted string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn al2023(s: &NodeSettings<'_>) -> Option<String> {
    if s.max_pods.is_none() && s.pre_bootstrap_commands.is_empty() && s.bootstrap.is_none() {
        return None;
    }
    let mut out = String::new();
    out.push_str("MIME-Version: 1.0\n");
    out.push_str(&format!("Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\n\n"));
    if let Some(b) = &s.bootstrap {
        out.push_str(&format!("--{BOUNDARY}\n"));
        out.push_str("Content-Type: application/node.eks.aws\n\n");
        out.push_str("---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n");
        out.push_str(&format!(
            "  cluster:\n    name: {}\n    apiServerEndpoint: {}\n    certificateAuthority: {}\n    cidr: {}\n",
            quoted(b.cluster),
            quoted(b.endpoint),
            quoted(b.certificate_authority),
            quoted(b.service_cidr)
        ));
        out.push_str("  kubelet:\n");
        if let Some(m) = s.max_pods {
            out.push_str(&format!("    config:\n      maxPods: {m}\n"));
        }
        out.push_str(&format!("    flags:\n      - {}\n", quoted(&b.label_flag())));
        if !b.taints.is_empty() {
            out.push_str(&format!("      - {}\n", quoted(&format!("--register-with-taints={}", b.taints.join(",")))));
        }
        out.push('\n');
    } else if let Some(m) = s.max_pods {
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
    let empty = serde_json::Map::new();
    let user = s.bottlerocket_settings.unwrap_or(&empty);
    let user_k = user.get("kubernetes").and_then(serde_json::Value::as_object).unwrap_or(&empty);
    // [settings.kubernetes]: the bootstrap of a custom AMI, max pods, then the user's own kubernetes values
    let mut k = String::new();
    if let Some(b) = &s.bootstrap {
        k.push_str(&format!("cluster-name = {}\n", quoted(b.cluster)));
        k.push_str(&format!("api-server = {}\n", quoted(b.endpoint)));
        k.push_str(&format!("cluster-certificate = {}\n", quoted(b.certificate_authority)));
        if let Some(dns) = b.dns_ip() {
            k.push_str(&format!("cluster-dns-ip = {}\n", quoted(&dns)));
        }
    }
    if let Some(m) = s.max_pods {
        k.push_str(&format!("max-pods = {m}\n"));
    }
    toml_scalars(&mut k, user_k);
    let mut out = String::new();
    if !k.is_empty() {
        out.push_str("[settings.kubernetes]\n");
        out.push_str(&k);
    }
    if let Some(b) = &s.bootstrap {
        out.push_str("\n[settings.kubernetes.node-labels]\n");
        for (k, v) in &b.labels {
            out.push_str(&format!("{} = {}\n", quoted(k), quoted(v)));
        }
        if !b.taints.is_empty() {
            // key = ["value:Effect", ...]
            let mut by_key: Vec<(String, Vec<String>)> = Vec::new();
            for t in &b.taints {
                let (k, rest) = t.split_once('=').unwrap_or((t.as_str(), ""));
                match by_key.iter_mut().find(|(x, _)| x == k) {
                    Some((_, v)) => v.push(rest.to_string()),
                    None => by_key.push((k.to_string(), vec![rest.to_string()])),
                }
            }
            out.push_str("\n[settings.kubernetes.node-taints]\n");
            for (k, vs) in by_key {
                let list: Vec<String> = vs.iter().map(|v| quoted(v)).collect();
                out.push_str(&format!("{} = [{}]\n", quoted(&k), list.join(", ")));
            }
        }
    }
    toml_tables(&mut out, "settings.kubernetes", user_k);
    // the rest of the user's settings: values of `settings` itself, then its tables (TOML lets a table be
    // defined after one of its sub-tables)
    let rest: serde_json::Map<String, serde_json::Value> =
        user.iter().filter(|(k, _)| *k != "kubernetes").map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut top = String::new();
    toml_scalars(&mut top, &rest);
    if !top.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("[settings]\n");
        out.push_str(&top);
    }
    toml_tables(&mut out, "settings", &rest);
    (!out.is_empty()).then_some(out)
}

/// A TOML key: bare when it can be, else quoted.
fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        k.to_string()
    } else {
        quoted(k)
    }
}

/// A scalar or a list of scalars as TOML writes it (validation lets no other value through).
fn toml_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::String(s) => quoted(s),
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// The `key = value` lines of a table's scalars, in the spec's order.
fn toml_scalars(out: &mut String, m: &serde_json::Map<String, serde_json::Value>) {
    for (k, v) in m.iter().filter(|(_, v)| !v.is_object()) {
        out.push_str(&format!("{} = {}\n", toml_key(k), toml_value(v)));
    }
}

/// Each sub-table of `m` under `path`, as `[path.key]` with its scalars, then its own sub-tables.
fn toml_tables(out: &mut String, path: &str, m: &serde_json::Map<String, serde_json::Value>) {
    for (k, v) in m {
        let Some(sub) = v.as_object() else { continue };
        let here = format!("{path}.{}", toml_key(k));
        let mut lines = String::new();
        toml_scalars(&mut lines, sub);
        if !lines.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{here}]\n"));
            out.push_str(&lines);
        }
        toml_tables(out, &here, sub);
    }
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
        let doc = render(
            Family::Al2023,
            &NodeSettings { max_pods: Some(110), pre_bootstrap_commands: &cmds, bootstrap: None, ..Default::default() },
        )
        .unwrap();
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
        let doc = render(
            Family::Al2023,
            &NodeSettings { max_pods: None, pre_bootstrap_commands: &cmds, bootstrap: None, ..Default::default() },
        )
        .unwrap();
        golden("al2023-commands.mime", &doc);
        let parts = mime_parts(&doc);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].0.starts_with("Content-Type: text/x-shellscript"));
    }

    #[test]
    fn bottlerocket_sets_max_pods_in_its_settings() {
        let doc = render(
            Family::Bottlerocket,
            &NodeSettings { max_pods: Some(250), pre_bootstrap_commands: &[], bootstrap: None, ..Default::default() },
        )
        .unwrap();
        golden("bottlerocket-max-pods.toml", &doc);
        // a table header, then `key = integer`
        let mut lines = doc.lines();
        assert_eq!(lines.next(), Some("[settings.kubernetes]"));
        assert_eq!(lines.next(), Some("max-pods = 250"));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn bottlerocket_settings_merge_into_eksodus_tables_as_valid_toml() {
        let settings: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"motd": "Hello, eksctl!", "kubernetes": {"cpu-manager-policy": "static", "eviction-hard": {"memory.available": "15%"}},
                "host-containers": {"admin": {"enabled": true}}, "kernel": {"sysctl": {"net.core.somaxconn": "4096"}},
                "ntp": {"time-servers": ["169.254.169.123"]}, "oci-defaults": {"resource-limits": {"max-open-files": {"soft-limit": 4096}}}}"#,
        )
        .unwrap();
        let doc = render(
            Family::Bottlerocket,
            &NodeSettings {
                max_pods: Some(110),
                bootstrap: Some(custom(None)),
                bottlerocket_settings: Some(&settings),
                ..Default::default()
            },
        )
        .unwrap();
        golden("bottlerocket-settings.toml", &doc);
        // a TOML parser reads it back as the one settings tree: eksodus's values and the user's side by side
        let t: toml_edit::DocumentMut = doc.parse().unwrap_or_else(|e| panic!("{e}\n{doc}"));
        let st = &t["settings"];
        assert_eq!(st["motd"].as_str(), Some("Hello, eksctl!"));
        assert_eq!(st["kubernetes"]["max-pods"].as_integer(), Some(110));
        assert_eq!(st["kubernetes"]["cluster-name"].as_str(), Some("shop"));
        assert_eq!(st["kubernetes"]["cpu-manager-policy"].as_str(), Some("static"));
        assert_eq!(st["kubernetes"]["eviction-hard"]["memory.available"].as_str(), Some("15%"));
        assert_eq!(st["kubernetes"]["node-labels"]["eks.amazonaws.com/nodegroup"].as_str(), Some("gpu"));
        assert_eq!(st["host-containers"]["admin"]["enabled"].as_bool(), Some(true));
        assert_eq!(st["kernel"]["sysctl"]["net.core.somaxconn"].as_str(), Some("4096"));
        assert_eq!(st["ntp"]["time-servers"].as_array().map(|a| a.len()), Some(1));
        assert_eq!(st["oci-defaults"]["resource-limits"]["max-open-files"]["soft-limit"].as_integer(), Some(4096));
        // settings alone, on EKS's own AMI with no max pods of eksodus's: only the user's tables
        let only: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"motd": "hi", "host-containers": {"admin": {"enabled": true}}}"#).unwrap();
        let doc =
            render(Family::Bottlerocket, &NodeSettings { bottlerocket_settings: Some(&only), ..Default::default() })
                .unwrap();
        assert_eq!(doc, "[settings]\nmotd = \"hi\"\n\n[settings.host-containers.admin]\nenabled = true\n");
        let empty = serde_json::Map::new();
        let none = NodeSettings { bottlerocket_settings: Some(&empty), ..Default::default() };
        assert_eq!(render(Family::Bottlerocket, &none), None);
    }

    fn custom<'a>(override_command: Option<&'a str>) -> Bootstrap<'a> {
        Bootstrap {
            cluster: "shop",
            endpoint: "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
            certificate_authority: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
            service_cidr: "172.20.0.0/16",
            labels: vec![
                ("eks.amazonaws.com/nodegroup".into(), "gpu".into()),
                ("eks.amazonaws.com/nodegroup-image".into(), "ami-0123456789abcdef0".into()),
                ("eks.amazonaws.com/capacityType".into(), "ON_DEMAND".into()),
                ("tier".into(), "gpu".into()),
            ],
            taints: vec!["nvidia.com/gpu=true:NoSchedule".into(), "nvidia.com/gpu=:NoExecute".into()],
            override_command,
        }
    }

    #[test]
    fn a_custom_al2023_ami_gets_the_whole_node_config() {
        let cmds = vec!["echo ready".to_string()];
        let doc = render(
            Family::Al2023,
            &NodeSettings {
                max_pods: Some(58),
                pre_bootstrap_commands: &cmds,
                bootstrap: Some(custom(None)),
                ..Default::default()
            },
        )
        .unwrap();
        golden("al2023-custom-ami.mime", &doc);
        let parts = mime_parts(&doc);
        assert_eq!(parts.len(), 2);
        let cfg: serde_json::Value = serde_saphyr::from_str(&parts[0].1).expect("the NodeConfig part is YAML");
        let c = &cfg["spec"]["cluster"];
        assert_eq!(c["name"], "shop");
        assert_eq!(c["apiServerEndpoint"], "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com");
        assert_eq!(c["certificateAuthority"], "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t");
        assert_eq!(c["cidr"], "172.20.0.0/16");
        assert_eq!(cfg["spec"]["kubelet"]["config"]["maxPods"], 58);
        let flags = cfg["spec"]["kubelet"]["flags"].as_array().unwrap();
        assert!(flags[0].as_str().unwrap().starts_with("--node-labels=eks.amazonaws.com/nodegroup=gpu,"));
        assert!(flags[0].as_str().unwrap().contains("eks.amazonaws.com/nodegroup-image=ami-0123456789abcdef0"));
        assert_eq!(flags[1], "--register-with-taints=nvidia.com/gpu=true:NoSchedule,nvidia.com/gpu=:NoExecute");
    }

    #[test]
    fn a_custom_al2_ami_runs_bootstrap_sh_or_the_users_command() {
        let cmds = vec!["echo 'it''s' > /tmp/x".to_string()];
        let doc = render(
            Family::Al2,
            &NodeSettings {
                max_pods: Some(29),
                pre_bootstrap_commands: &cmds,
                bootstrap: Some(custom(None)),
                ..Default::default()
            },
        )
        .unwrap();
        golden("al2-custom-ami.sh", &doc);
        assert!(doc.starts_with("#!/bin/bash\n"));
        let last = doc.lines().last().unwrap();
        assert!(last.starts_with("/etc/eks/bootstrap.sh 'shop' --apiserver-endpoint 'https://"), "{last}");
        assert!(last.contains(" --dns-cluster-ip 172.20.0.10 --use-max-pods false "), "{last}");
        assert!(last.contains("--max-pods=29'"), "{last}");
        let own = render(
            Family::Al2,
            &NodeSettings {
                max_pods: None,
                pre_bootstrap_commands: &cmds,
                bootstrap: Some(custom(Some("/etc/eks/bootstrap.sh shop\n"))),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(own.ends_with("> /tmp/x\n/etc/eks/bootstrap.sh shop\n"), "{own}");
        // without a custom AMI, EKS bootstraps Amazon Linux 2 itself
        assert_eq!(render(Family::Al2, &NodeSettings { max_pods: Some(29), ..Default::default() }), None);
    }

    #[test]
    fn a_custom_bottlerocket_ami_gets_its_kubernetes_settings() {
        let doc = render(
            Family::Bottlerocket,
            &NodeSettings {
                max_pods: None,
                pre_bootstrap_commands: &[],
                bootstrap: Some(custom(None)),
                ..Default::default()
            },
        )
        .unwrap();
        golden("bottlerocket-custom-ami.toml", &doc);
        let lines: Vec<&str> = doc.lines().collect();
        assert_eq!(lines[0], "[settings.kubernetes]");
        assert!(lines.contains(&"cluster-name = \"shop\""));
        assert!(lines.contains(&"cluster-dns-ip = \"172.20.0.10\""));
        assert!(lines.contains(&"[settings.kubernetes.node-labels]"));
        assert!(lines.contains(&"\"eks.amazonaws.com/nodegroup\" = \"gpu\""));
        assert!(lines.contains(&"\"nvidia.com/gpu\" = [\"true:NoSchedule\", \":NoExecute\"]"), "{doc}");
        // every line is a table header, a key = value pair, or empty (TOML's shape)
        for l in lines {
            assert!(l.is_empty() || (l.starts_with('[') && l.ends_with(']')) || l.contains(" = "), "{l}");
        }
    }

    #[test]
    fn an_ipv6_cluster_gives_custom_amis_its_ipv6_service_range_and_dns_address() {
        let v6 = || Bootstrap { service_cidr: "fd2e:4a7b:91c0::/108", ..custom(None) };
        assert_eq!(v6().dns_ip().as_deref(), Some("fd2e:4a7b:91c0::a"));
        assert!(v6().ipv6() && !custom(None).ipv6());
        assert_eq!(custom(None).dns_ip().as_deref(), Some("172.20.0.10"));
        // the tenth address is counted, carrying across a group, not spelled by appending "a"
        assert_eq!(Bootstrap { service_cidr: "fd00::fff6/124", ..custom(None) }.dns_ip().as_deref(), Some("fd00::1:0"));
        assert_eq!(Bootstrap { service_cidr: "not a cidr", ..custom(None) }.dns_ip(), None);
        let settings = |b| NodeSettings { max_pods: Some(110), bootstrap: Some(b), ..Default::default() };
        // Amazon Linux 2: the family and range as bootstrap.sh's own flags, besides the DNS address
        let al2 = render(Family::Al2, &settings(v6())).unwrap();
        golden("al2-custom-ami-ipv6.sh", &al2);
        assert!(
            al2.contains(
                " --ip-family ipv6 --service-ipv6-cidr fd2e:4a7b:91c0::/108 --dns-cluster-ip fd2e:4a7b:91c0::a "
            ),
            "{al2}"
        );
        assert!(!render(Family::Al2, &settings(custom(None))).unwrap().contains("--ip-family"));
        // AL2023: nodeadm takes the family from the CIDR itself
        let al2023 = render(Family::Al2023, &settings(v6())).unwrap();
        let cfg: serde_json::Value = serde_saphyr::from_str(&mime_parts(&al2023)[0].1).unwrap();
        assert_eq!(cfg["spec"]["cluster"]["cidr"], "fd2e:4a7b:91c0::/108");
        // Bottlerocket: the DNS address
        let br = render(Family::Bottlerocket, &settings(v6())).unwrap();
        let t: toml_edit::DocumentMut = br.parse().unwrap();
        assert_eq!(t["settings"]["kubernetes"]["cluster-dns-ip"].as_str(), Some("fd2e:4a7b:91c0::a"));
    }

    #[test]
    fn nothing_to_add_is_no_user_data() {
        let none = NodeSettings::default();
        assert_eq!(render(Family::Al2023, &none), None);
        assert_eq!(render(Family::Bottlerocket, &none), None);
        assert_eq!(
            render(
                Family::Windows,
                &NodeSettings {
                    max_pods: Some(20),
                    pre_bootstrap_commands: &[],
                    bootstrap: None,
                    ..Default::default()
                }
            ),
            None
        );
    }

    #[test]
    fn families_and_data_devices() {
        assert_eq!(Family::of("AL2023_ARM_64_STANDARD"), Family::Al2023);
        assert_eq!(Family::of("BOTTLEROCKET_x86_64_NVIDIA"), Family::Bottlerocket);
        assert_eq!(Family::of("AL2_x86_64"), Family::Al2);
        assert_eq!(Family::of("WINDOWS_CORE_2022_x86_64"), Family::Windows);
        assert_eq!(Family::of("CUSTOM"), Family::Other);
        assert_eq!(Family::Windows.data_device(), "/dev/sda1");
        assert_eq!(Family::Al2023.data_device(), "/dev/xvda");
        assert_eq!(Family::Bottlerocket.data_device(), "/dev/xvdb");
    }

    #[test]
    fn user_data_round_trips_through_base64() {
        let cmds = vec!["echo ünïcode".to_string()];
        let doc = render(
            Family::Al2023,
            &NodeSettings { max_pods: None, pre_bootstrap_commands: &cmds, bootstrap: None, ..Default::default() },
        )
        .unwrap();
        assert_eq!(decode(&encode(&doc)).as_deref(), Some(doc.as_str()));
        assert_eq!(decode("Zm9v\nYmFy").as_deref(), Some("foobar"));
        assert_eq!(decode("Zm9v*"), None);
    }
}
