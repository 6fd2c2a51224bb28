//! Amazon VPC CNI capacity: max pods per instance type, and the addresses a node takes from its subnets.
//!
//! The limits table is the VPC CNI's own `instanceNetworkingLimits` (see `data/README.md`); the max-pods rules
//! are those of the EKS AMI's `max-pods-calculator.sh`, applied in the same order:
//!
//! ```text
//! enis = min(max_eni, E)            (E = default network card's ENIs; max_eni only when given)
//! enis = enis - 1                   with custom networking (after the clamp)
//! pd   = hypervisor == nitro && prefix delegation && CNI >= 1.9
//! raw  = enis * ((I - 1) * 16) + 2  if pd      (I = IPv4 addresses per ENI, primary included)
//!      = enis * (I - 1) + 2         otherwise
//! out  = min(250, raw) if vCPUs > 30, min(110, raw) otherwise; raw when vCPUs are unknown or uncapped is asked
//! ```
//!
//! Pure: no IO.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Serialize;

use crate::Error;

static LIMITS_CSV: &str = include_str!("../data/instance-limits.csv");

/// Addresses in one /28 prefix.
pub const IPS_PER_PREFIX: u32 = 16;
/// Max-pods ceiling for instance types with at most 30 vCPUs.
pub const MAX_PODS_LOW_CPU: u32 = 110;
/// Max-pods ceiling for instance types with more than 30 vCPUs.
pub const MAX_PODS_HIGH_CPU: u32 = 250;
/// vCPU count above which the higher ceiling applies.
pub const HIGH_CPU_THRESHOLD: u32 = 30;
/// Addresses AWS reserves in every subnet (network, router, DNS, future use, broadcast).
pub const AWS_RESERVED_PER_SUBNET: u32 = 5;
/// Free addresses EKS needs in each cluster subnet to perform a control-plane upgrade.
pub const EKS_UPGRADE_FREE: u32 = 5;

/// The EC2 hypervisor as the limits table records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hypervisor {
    /// AWS Nitro.
    Nitro,
    /// Xen (older generations).
    Xen,
    /// Not reported by EC2 (mostly bare metal).
    Unknown,
}

/// ENI and address limits of one instance type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceLimits {
    /// Instance type name.
    pub instance_type: String,
    /// ENIs on the default network card.
    pub max_enis: u32,
    /// IPv4 addresses per ENI, the primary included.
    pub ipv4_per_eni: u32,
    /// Hypervisor.
    pub hypervisor: Hypervisor,
    /// Whether it is a bare-metal type.
    pub bare_metal: bool,
    /// Network cards.
    pub network_cards: u32,
}

static TABLE: LazyLock<BTreeMap<String, InstanceLimits>> = LazyLock::new(|| {
    let mut m = BTreeMap::new();
    for line in LIMITS_CSV.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let parse = |i: usize| f[i].parse::<u32>().expect("bundled limits table is well formed");
        let l = InstanceLimits {
            instance_type: f[0].to_string(),
            max_enis: parse(1),
            ipv4_per_eni: parse(2),
            hypervisor: match f[4] {
                "nitro" => Hypervisor::Nitro,
                "xen" => Hypervisor::Xen,
                _ => Hypervisor::Unknown,
            },
            bare_metal: f[5] == "true",
            network_cards: parse(6),
        };
        m.insert(l.instance_type.clone(), l);
    }
    m
});

/// Limits of `instance_type`, or an error suggesting close names.
pub fn limits(instance_type: &str) -> Result<&'static InstanceLimits, Error> {
    TABLE.get(instance_type).ok_or_else(|| {
        let family = instance_type.split('.').next().unwrap_or("");
        let mut similar: Vec<String> =
            TABLE.keys().filter(|k| k.split('.').next() == Some(family)).take(6).cloned().collect();
        if similar.is_empty() {
            similar = TABLE
                .keys()
                .filter(|k| k.starts_with(&instance_type[..instance_type.len().min(2)]))
                .take(6)
                .cloned()
                .collect();
        }
        Error::UnknownInstanceType { instance_type: instance_type.to_string(), similar }
    })
}

/// Every known instance type, sorted by name.
pub fn all() -> impl Iterator<Item = &'static InstanceLimits> {
    TABLE.values()
}

/// CNI settings that change max pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CniOptions {
    /// `ENABLE_PREFIX_DELEGATION`.
    pub prefix_delegation: bool,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG` (pods use other subnets; the primary ENI holds none).
    pub custom_networking: bool,
    /// `MAX_ENI`.
    pub max_eni: Option<u32>,
    /// CNI `(major, minor)` version.
    pub cni_version: (u32, u32),
    /// `ENABLE_IPv6` (an IPv6 cluster): pods take IPv6 addresses from a /80 prefix on the primary ENI, so
    /// prefix delegation is in effect whatever `prefix_delegation` says, and pods use no IPv4 addresses.
    pub ipv6: bool,
}

impl Default for CniOptions {
    fn default() -> Self {
        CniOptions {
            prefix_delegation: false,
            custom_networking: false,
            max_eni: None,
            cni_version: (1, 23),
            ipv6: false,
        }
    }
}

/// Why prefix delegation was asked for but not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdNotApplied {
    /// The hypervisor is not reported as Nitro.
    NotNitro,
    /// The CNI is older than 1.9.
    CniTooOld,
}

/// Max pods for one instance type, with the parts that explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxPods {
    /// The value to give kubelet: capped when the vCPU count is known and `uncapped` was not asked.
    pub value: u32,
    /// The value before the 110/250 ceiling.
    pub uncapped: u32,
    /// The ceiling applied, if any.
    pub cap: Option<u32>,
    /// ENIs whose addresses go to pods.
    pub enis_for_pods: u32,
    /// Whether prefix delegation is in effect.
    pub prefix_delegation: bool,
    /// Why prefix delegation was asked for but not applied.
    pub prefix_delegation_not_applied: Option<PdNotApplied>,
}

/// Computes max pods. `vcpus` enables the 110/250 ceiling; `uncapped` returns the raw value regardless.
///
/// In IPv6 mode the CNI runs only with prefixes (EKS turns `ENABLE_PREFIX_DELEGATION` on with
/// `ENABLE_IPv6`), so the figure is the prefix-delegation one of `max-pods-calculator.sh
/// --cni-prefix-delegation-enabled`: the IPv4 formula stands in for the /80's addresses, which never run
/// out, and the 110/250 ceiling is what binds on all but the smallest instances.
pub fn max_pods(l: &InstanceLimits, o: &CniOptions, vcpus: Option<u32>, uncapped: bool) -> MaxPods {
    let mut enis = match o.max_eni {
        Some(m) => m.min(l.max_enis),
        None => l.max_enis,
    };
    if o.custom_networking {
        enis = enis.saturating_sub(1);
    }
    let pd_not_applied = if !(o.prefix_delegation || o.ipv6) {
        None
    } else if l.hypervisor != Hypervisor::Nitro {
        Some(PdNotApplied::NotNitro)
    } else if o.cni_version < (1, 9) {
        Some(PdNotApplied::CniTooOld)
    } else {
        None
    };
    let pd = (o.prefix_delegation || o.ipv6) && pd_not_applied.is_none();
    let slots = l.ipv4_per_eni.saturating_sub(1);
    let raw = if pd { enis * slots * IPS_PER_PREFIX + 2 } else { enis * slots + 2 };
    let cap = match (uncapped, vcpus) {
        (false, Some(v)) if v > HIGH_CPU_THRESHOLD => Some(MAX_PODS_HIGH_CPU),
        (false, Some(_)) => Some(MAX_PODS_LOW_CPU),
        _ => None,
    };
    MaxPods {
        value: cap.map_or(raw, |c| c.min(raw)),
        uncapped: raw,
        cap,
        enis_for_pods: enis,
        prefix_delegation: pd,
        prefix_delegation_not_applied: pd_not_applied,
    }
}

/// Max pods of a Windows node: Windows nodes take one network interface, whose addresses but its own go to
/// pods (EKS's Windows considerations: "the number of IP addresses available per elastic network interface
/// for the node's instance type, minus one"), with no ceiling and no host-network pods added.
pub fn windows_max_pods(l: &InstanceLimits) -> u32 {
    l.ipv4_per_eni.saturating_sub(1)
}

/// Addresses one node takes from its subnets when running `pods` pods with the CNI's default warm targets
/// (`WARM_ENI_TARGET=1` in secondary-IP mode, `WARM_PREFIX_TARGET=1` with prefix delegation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct NodeFootprint {
    /// Single addresses in the node's own (private) subnet: ENI primaries, and pod IPs without custom networking.
    pub node_subnet_ips: u32,
    /// Single addresses in the pod subnet (custom networking only): pod ENIs' primaries and secondaries.
    pub pod_subnet_ips: u32,
    /// /28 prefixes, in the pod subnet with custom networking, else in the node subnet.
    pub prefixes: u32,
}

/// How many addresses and prefixes a node running `pods` pods attaches, warm pool included. In IPv6 mode
/// that is the primary ENI's IPv4 address alone: the pods' /80 comes from the subnet's IPv6 block, which
/// a /64 never runs short of.
pub fn node_footprint(l: &InstanceLimits, o: &CniOptions, pods: u32) -> NodeFootprint {
    if o.ipv6 {
        return NodeFootprint { node_subnet_ips: 1, pod_subnet_ips: 0, prefixes: 0 };
    }
    let mp = max_pods(l, o, None, true);
    let slots = l.ipv4_per_eni.saturating_sub(1).max(1);
    let pods = pods.min(mp.uncapped.saturating_sub(2));
    let pod_enis_max = mp.enis_for_pods.max(1);
    if mp.prefix_delegation {
        let prefixes = pods.div_ceil(IPS_PER_PREFIX) + 1; // + WARM_PREFIX_TARGET
        let prefixes = prefixes.min(pod_enis_max * slots);
        let enis = prefixes.div_ceil(slots).max(1);
        if o.custom_networking {
            NodeFootprint { node_subnet_ips: 1, pod_subnet_ips: enis, prefixes }
        } else {
            NodeFootprint { node_subnet_ips: enis, pod_subnet_ips: 0, prefixes }
        }
    } else {
        let enis = (pods.div_ceil(slots) + 1).min(pod_enis_max); // + WARM_ENI_TARGET
        let ips = enis * l.ipv4_per_eni;
        if o.custom_networking {
            NodeFootprint { node_subnet_ips: 1, pod_subnet_ips: ips, prefixes: 0 }
        } else {
            NodeFootprint { node_subnet_ips: ips, pod_subnet_ips: 0, prefixes: 0 }
        }
    }
}

/// Whether a subnet of `prefix_len` holds `ips` single addresses and `prefixes` /28 prefixes, with AWS's five
/// reserved addresses and `free` more kept free. Prefixes need whole aligned /28 blocks; the reserved
/// addresses spoil the first and last block, and each single address may spoil one more (AWS does not
/// promise to pack them), so the check is the conservative one.
pub fn subnet_fits(prefix_len: u8, ips: u64, prefixes: u64, free: u64) -> bool {
    if prefix_len > 28 {
        return false;
    }
    let size = 1u64 << (32 - prefix_len);
    let blocks = size / IPS_PER_PREFIX as u64;
    let loose = ips + free;
    let enough_addresses = ips + prefixes * IPS_PER_PREFIX as u64 + free + AWS_RESERVED_PER_SUBNET as u64 <= size;
    let enough_blocks = prefixes == 0 || blocks.saturating_sub(2 + loose) >= prefixes;
    enough_addresses && enough_blocks
}

/// The longest prefix (smallest subnet) that fits the demand, or `None` when even a /16 does not.
pub fn smallest_prefix_for(ips: u64, prefixes: u64, free: u64) -> Option<u8> {
    (16..=28).rev().find(|&p| subnet_fits(p, ips, prefixes, free))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_is_complete() {
        assert_eq!(all().count(), 1391);
        let m5 = limits("m5.large").unwrap();
        assert_eq!((m5.max_enis, m5.ipv4_per_eni, m5.hypervisor), (3, 10, Hypervisor::Nitro));
    }

    #[test]
    fn windows_nodes_count_one_interface_less_its_own_address() {
        // the per-interface IPv4 column of the table, less one: prefix delegation, custom networking and the
        // 110/250 ceiling of Linux nodes do not apply
        for (t, want) in [("t3.medium", 5), ("m5.large", 9), ("c5.4xlarge", 29)] {
            assert_eq!(windows_max_pods(limits(t).unwrap()), want, "{t}");
        }
        for l in all() {
            assert!(windows_max_pods(l) < max_pods(l, &CniOptions::default(), None, true).value, "{}", l.instance_type);
        }
    }

    #[test]
    fn unknown_type_suggests_neighbours() {
        let e = limits("m5.huge").unwrap_err().to_string();
        assert!(e.contains("m5.huge") && e.contains("m5."), "{e}");
    }

    /// The published `eni-max-pods.txt` is exactly the uncapped secondary-IP value for every row.
    #[test]
    fn uncapped_secondary_ip_matches_published_formula_for_every_type() {
        for l in all() {
            let mp = max_pods(l, &CniOptions::default(), None, false);
            assert_eq!(mp.value, l.max_enis * (l.ipv4_per_eni - 1) + 2, "{}", l.instance_type);
        }
    }

    /// Data-driven cases, each checked by hand against the calculator script.
    #[test]
    fn calculator_cases() {
        struct Case {
            t: &'static str,
            pd: bool,
            custom: bool,
            max_eni: Option<u32>,
            cni: (u32, u32),
            vcpus: Option<u32>,
            uncapped: bool,
            want: u32,
        }
        let c = |t, pd, custom, max_eni, cni, vcpus, uncapped, want| Case {
            t,
            pd,
            custom,
            max_eni,
            cni,
            vcpus,
            uncapped,
            want,
        };
        let cases = [
            c("m5.large", false, false, None, (1, 23), Some(2), false, 29),
            c("m5.large", true, false, None, (1, 23), Some(2), false, 110),
            c("m5.large", true, false, None, (1, 23), Some(2), true, 434),
            c("m5.large", true, false, None, (1, 8), Some(2), false, 29),
            c("m5.large", false, true, None, (1, 23), Some(2), false, 20),
            c("m5.large", false, false, Some(1), (1, 23), Some(2), false, 11),
            c("m5.large", false, true, Some(1), (1, 23), Some(2), false, 2),
            c("t3.micro", false, false, None, (1, 23), Some(2), false, 4),
            c("m5.24xlarge", false, false, None, (1, 23), Some(96), false, 250),
            c("m5.24xlarge", false, false, None, (1, 23), None, false, 737),
            c("m5.8xlarge", false, false, None, (1, 23), Some(32), false, 234),
            c("c5.4xlarge", true, false, None, (1, 23), Some(16), false, 110),
            // xen: prefix delegation silently not applied
            c("m4.large", true, false, None, (1, 23), Some(2), false, 20),
            // bare metal reported without a hypervisor: not applied either
            c("m5.metal", true, false, None, (1, 23), None, true, 737),
        ];
        for k in cases {
            let l = limits(k.t).unwrap();
            let o = CniOptions {
                prefix_delegation: k.pd,
                custom_networking: k.custom,
                max_eni: k.max_eni,
                cni_version: k.cni,
                ipv6: false,
            };
            assert_eq!(
                max_pods(l, &o, k.vcpus, k.uncapped).value,
                k.want,
                "{} pd={} custom={} max_eni={:?}",
                k.t,
                k.pd,
                k.custom,
                k.max_eni
            );
        }
        let o = CniOptions { prefix_delegation: true, ..Default::default() };
        assert_eq!(
            max_pods(limits("m4.large").unwrap(), &o, None, false).prefix_delegation_not_applied,
            Some(PdNotApplied::NotNitro)
        );
    }

    #[test]
    fn footprint_counts_warm_pools() {
        let l = limits("m5.large").unwrap(); // 3 ENIs x 10
                                             // 20 pods need 3 ENIs (9 secondaries each) -> 3 ENIs incl. warm, capped at 3
        assert_eq!(node_footprint(l, &CniOptions::default(), 20).node_subnet_ips, 30);
        // 5 pods: 1 ENI + 1 warm
        assert_eq!(node_footprint(l, &CniOptions::default(), 5).node_subnet_ips, 20);
        let pd = CniOptions { prefix_delegation: true, ..Default::default() };
        let f = node_footprint(l, &pd, 40);
        assert_eq!((f.prefixes, f.node_subnet_ips), (4, 1));
        let cn = CniOptions { custom_networking: true, ..Default::default() };
        let f = node_footprint(l, &cn, 10);
        assert_eq!((f.node_subnet_ips, f.pod_subnet_ips), (1, 20));
    }

    #[test]
    fn ipv6_mode_runs_with_prefixes_and_takes_one_ipv4_address() {
        let l = limits("m5.large").unwrap();
        let v6 = CniOptions { ipv6: true, ..Default::default() };
        let pd = CniOptions { prefix_delegation: true, ..Default::default() };
        // the calculator's prefix-delegation figure, whatever the mode field says
        assert_eq!(max_pods(l, &v6, Some(2), false), max_pods(l, &pd, Some(2), false));
        assert_eq!(max_pods(l, &v6, Some(2), false).value, 110);
        assert!(max_pods(l, &v6, None, true).prefix_delegation);
        // pods take IPv6 addresses: the node's subnet gives up its primary address only, at any pod count
        for pods in [0, 5, 110] {
            assert_eq!(
                node_footprint(l, &v6, pods),
                NodeFootprint { node_subnet_ips: 1, pod_subnet_ips: 0, prefixes: 0 }
            );
        }
        // a Xen instance has no prefixes, so it cannot run IPv6 pods: said, as for prefix delegation
        assert_eq!(
            max_pods(limits("m4.large").unwrap(), &v6, None, false).prefix_delegation_not_applied,
            Some(PdNotApplied::NotNitro)
        );
    }

    #[test]
    fn prefix_fit_respects_alignment() {
        // a /24 has 16 blocks: 2 spoiled by reserved addresses, 14 usable
        assert!(subnet_fits(24, 0, 14, 0));
        assert!(!subnet_fits(24, 0, 15, 0));
        assert!(!subnet_fits(24, 3, 12, 0));
        assert!(subnet_fits(24, 251, 0, 0));
        assert!(!subnet_fits(24, 252, 0, 0));
        assert_eq!(smallest_prefix_for(100, 0, 5), Some(25));
        assert_eq!(smallest_prefix_for(1 << 20, 0, 0), None);
    }

    proptest! {
        #[test]
        fn caps_never_exceed_and_options_only_lower(idx in 0usize..1391, vcpus in proptest::option::of(1u32..200), max_eni in proptest::option::of(1u32..20), custom: bool, pd: bool) {
            let l = all().nth(idx).unwrap();
            let base = CniOptions { prefix_delegation: pd, ..Default::default() };
            let o = CniOptions { custom_networking: custom, max_eni, ..base };
            let capped = max_pods(l, &o, vcpus, false);
            prop_assert!(capped.value <= capped.uncapped);
            if let Some(v) = vcpus { let ceiling = if v > 30 { 250 } else { 110 }; prop_assert!(capped.value <= ceiling); }
            // max_eni and custom networking never raise the value
            prop_assert!(capped.uncapped <= max_pods(l, &base, None, true).uncapped);
            prop_assert!(capped.uncapped >= 2);
        }

        #[test]
        fn smallest_prefix_is_smallest(ips in 0u64..5000, prefixes in 0u64..300, free in 0u64..10) {
            if let Some(p) = smallest_prefix_for(ips, prefixes, free) {
                prop_assert!(subnet_fits(p, ips, prefixes, free));
                if p < 28 { prop_assert!(!subnet_fits(p + 1, ips, prefixes, free)); }
            }
        }
    }
}
