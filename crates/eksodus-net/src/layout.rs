//! The CIDR planner: carves the VPC CIDR (and the secondary CIDR for custom networking) into subnets per zone
//! and tier. Pure and deterministic.
//!
//! Every subnet size is a power of two, so allocating them largest first at the next aligned offset packs
//! them with no gaps: a layout fits exactly when the sizes add up to at most the parent CIDR. Each zone gets
//! the same size in a tier (balanced); sizes come from the spec, from the demand, or from the space left.

use std::fmt;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;

use eksodus_core::spec::{CniMode, EnvironmentSpec};

use crate::cni::{self, CniOptions, NodeFootprint, EKS_UPGRADE_FREE};
use crate::Error;

/// A subnet tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Routed to the internet gateway.
    Public,
    /// Routed to NAT; nodes live here.
    Private,
    /// Pod addresses with custom networking, in the secondary CIDR.
    Pods,
}

impl Tier {
    /// The tier's name in keys and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Public => "public",
            Tier::Private => "private",
            Tier::Pods => "pods",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One planned subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetPlan {
    /// Tier.
    pub tier: Tier,
    /// Availability zone.
    pub az: String,
    /// Its CIDR.
    pub cidr: Ipv4Net,
    /// Addresses usable after AWS's five reserved ones.
    pub usable: u32,
    /// IPv4 addresses (or /28-prefix addresses) left for pods after AWS's reservation and EKS's upgrade
    /// headroom; absent for the public tier, and in an IPv6 cluster, whose pods take IPv6 addresses.
    pub pod_ips: Option<u64>,
    /// Nodes of the demand's instance type the subnet can hold (when a demand is given).
    pub node_capacity: Option<u64>,
    /// Which /64 of the VPC's IPv6 /56 the subnet takes (dual-stack only): 64 per tier, then the zone's place,
    /// so a subnet keeps its block while zones are added after it. See [`ipv6_subnet`].
    pub ipv6_index: Option<u8>,
}

impl Layout {
    /// Whether `zone` is one of the layout's Local Zones.
    pub fn is_local(&self, zone: &str) -> bool {
        self.local_zones.iter().any(|z| z == zone)
    }
}

impl SubnetPlan {
    /// The logical key of the subnet in the network component.
    pub fn key(&self) -> String {
        format!("subnet/{}/{}", self.tier, self.az)
    }
}

/// The `index`-th /64 of a VPC's IPv6 block (a /56 from Amazon's pool holds 256).
pub fn ipv6_subnet(vpc_block: Ipv6Net, index: u8) -> Ipv6Net {
    let base = u128::from(vpc_block.network());
    let addr = std::net::Ipv6Addr::from(base + ((index as u128) << 64));
    Ipv6Net::new(addr, 64).expect("64 is a valid IPv6 prefix length")
}

/// Which /64 of `vpc_block` a subnet's block is ([`ipv6_subnet`] backwards); None for a block that is not one
/// of them (someone else's, or another size).
pub fn ipv6_index(vpc_block: Ipv6Net, block: Ipv6Net) -> Option<u8> {
    if block.prefix_len() != 64 || vpc_block.prefix_len() > 64 || !vpc_block.contains(&block) {
        return None;
    }
    let offset = (u128::from(block.network()) - u128::from(vpc_block.network())) >> 64;
    u8::try_from(offset).ok()
}

/// The planned layout of an environment's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// VPC CIDR.
    pub vpc: Ipv4Net,
    /// Secondary CIDR (custom networking).
    pub secondary: Option<Ipv4Net>,
    /// Availability zones, in order.
    pub azs: Vec<String>,
    /// Local Zones, in order: each has a public and a private subnet sized as an availability zone's, after
    /// theirs.
    pub local_zones: Vec<String>,
    /// Subnets, by tier then zone.
    pub subnets: Vec<SubnetPlan>,
    /// Addresses of the VPC CIDR not given to any subnet.
    pub unallocated: u64,
    /// Pods per node assumed for the demand.
    pub pods_per_node: Option<u32>,
    /// Addresses one node takes (demand only).
    pub node_footprint: Option<NodeFootprint>,
}

/// A request for `count` blocks of one size, carved from one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarveRequest {
    /// What the block is for (reported in errors).
    pub label: String,
    /// Prefix length.
    pub prefix: u8,
}

/// Carves `parent` into blocks of the requested prefix lengths, returned in request order. Blocks are
/// allocated largest first (ties in request order), each at the next aligned offset.
pub fn carve(parent: Ipv4Net, requests: &[CarveRequest]) -> Result<Vec<Ipv4Net>, CarveError> {
    let parent_size = 1u64 << (32 - parent.prefix_len());
    let needed: u64 = requests.iter().map(|r| 1u64 << (32 - r.prefix.min(32))).sum();
    if let Some(r) = requests.iter().find(|r| r.prefix < parent.prefix_len() || r.prefix > 32) {
        return Err(CarveError { parent, needed, available: parent_size, too_big: Some(r.label.clone()) });
    }
    if needed > parent_size {
        return Err(CarveError { parent, needed, available: parent_size, too_big: None });
    }
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| (requests[i].prefix, i));
    let base = u32::from(parent.network()) as u64;
    let mut cursor = 0u64;
    let mut out = vec![parent; requests.len()];
    for i in order {
        let size = 1u64 << (32 - requests[i].prefix);
        debug_assert_eq!(cursor % size, 0, "largest-first keeps the cursor aligned");
        let addr = std::net::Ipv4Addr::from((base + cursor) as u32);
        out[i] = Ipv4Net::new(addr, requests[i].prefix).expect("prefix is at most 32");
        cursor += size;
    }
    Ok(out)
}

/// A layout that does not fit its parent CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarveError {
    /// The CIDR being carved.
    pub parent: Ipv4Net,
    /// Addresses requested.
    pub needed: u64,
    /// Addresses in the parent.
    pub available: u64,
    /// A single block larger than the parent, if that is the problem.
    pub too_big: Option<String>,
}

impl fmt::Display for CarveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.too_big {
            write!(f, "{l} is larger than {}; ", self.parent)?;
        }
        let short = self.needed - self.available;
        let need_prefix = 32 - (64 - (self.needed - 1).leading_zeros()) as u8;
        write!(
            f,
            "the subnets need {} addresses but {} holds {}: short by {} (a /{} would fit)",
            self.needed, self.parent, self.available, short, need_prefix
        )
    }
}

/// A zone as EC2 lists it for the region (`DescribeAvailabilityZones`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedZone {
    /// `us-east-1a`.
    pub name: String,
    /// `availability-zone`, `local-zone` or `wavelength-zone` (absent: an availability zone).
    pub zone_type: Option<String>,
    /// `opt-in-not-required`, `opted-in` or `not-opted-in` (absent: usable).
    pub opt_in_status: Option<String>,
}

/// The zones `network.azs: N` stands for: the first `n` of the region's availability zones by name, leaving out
/// Local and Wavelength Zones and zones the account has not opted into. Zone letters alone are not enough:
/// ap-northeast-1 offers no `b` zone to new accounts, and which letters exist differs per region. The choice
/// depends only on the listing, not on a zone's momentary state, so it stays the same from plan to plan.
pub fn pick_zones(listed: &[ListedZone], n: usize) -> Result<Vec<String>, Error> {
    let mut names: Vec<&str> = listed
        .iter()
        .filter(|z| z.zone_type.as_deref().is_none_or(|t| t == "availability-zone"))
        .filter(|z| z.opt_in_status.as_deref() != Some("not-opted-in"))
        .map(|z| z.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.len() < n {
        return Err(Error::Layout {
            field: "network.azs".into(),
            message: format!(
                "{n} zones asked for, but the region offers {} ({}); ask for fewer or name them",
                names.len(),
                names.join(", ")
            ),
        });
    }
    Ok(names[..n].iter().map(|z| z.to_string()).collect())
}

/// Checks `network.local_zones` against the region's listing: each must be listed as a Local Zone that the
/// account has opted into (EC2 lists a zone group's zones once the account opts in; `CreateSubnet` in any
/// other fails half way through an apply).
pub fn check_local_zones(listed: &[ListedZone], local_zones: &[String]) -> Result<(), Error> {
    for (i, name) in local_zones.iter().enumerate() {
        let field = format!("network.local_zones[{i}]");
        let found = listed.iter().find(|z| &z.name == name);
        let message = match found {
            None => format!(
                "EC2 lists no zone `{name}` to this account: opt in to its zone group (ModifyAvailabilityZoneGroup) or check the name"
            ),
            Some(z) if z.zone_type.as_deref() != Some("local-zone") => {
                format!("`{name}` is a {}, not a Local Zone", z.zone_type.as_deref().unwrap_or("availability-zone"))
            }
            Some(z) if z.opt_in_status.as_deref() == Some("not-opted-in") => {
                format!("the account has not opted in to `{name}`'s zone group (ModifyAvailabilityZoneGroup)")
            }
            Some(_) => continue,
        };
        return Err(Error::Layout { field, message });
    }
    Ok(())
}

/// What the spec asks of the CNI, as [`CniOptions`].
pub fn cni_options(spec: &EnvironmentSpec) -> CniOptions {
    let c = &spec.network.cni;
    CniOptions {
        prefix_delegation: c.mode == CniMode::PrefixDelegation,
        custom_networking: c.custom_networking.is_some(),
        max_eni: c.max_eni,
        cni_version: eksodus_core::spec::parse_version(&c.version).unwrap_or((1, 23)),
        ipv6: spec.ipv6_cluster(),
    }
}

fn ceil_log2(n: u64) -> u8 {
    if n <= 1 {
        0
    } else {
        (64 - (n - 1).leading_zeros()) as u8
    }
}

/// Plans the layout of a structurally valid spec that creates its own VPC. Errors name the spec field.
pub fn plan(spec: &EnvironmentSpec) -> Result<Layout, Error> {
    let n = &spec.network;
    let vpc = n.cidr.ok_or_else(|| Error::Layout {
        field: "network.cidr".into(),
        message: "a layout needs a VPC CIDR (network.existing adopts subnets as they are)".into(),
    })?;
    let azs = spec.az_names();
    let local_zones = n.local_zones.clone();
    // every zone, Local Zones after the region's: a spec without Local Zones is laid out as it always was
    let all_zones: Vec<String> = azs.iter().chain(&local_zones).cloned().collect();
    let zones = all_zones.len() as u64;
    let opts = cni_options(spec);
    let custom = n.cni.custom_networking.as_ref().map(|c| c.secondary_cidr);

    // Demand per zone, in single addresses and prefixes, for the node tier and the pod tier.
    let mut footprint = None;
    let mut pods_per_node = None;
    let mut node_demand: Option<(u64, u64)> = None;
    let mut pod_demand: Option<(u64, u64)> = None;
    if let Some(d) = &n.demand {
        let l = cni::limits(&d.instance_type)
            .map_err(|e| Error::Layout { field: "network.demand.instance_type".into(), message: e.to_string() })?;
        let mp = cni::max_pods(l, &opts, d.vcpus, false);
        let ppn =
            d.pods_per_node.unwrap_or(if d.vcpus.is_some() { mp.value } else { mp.value.min(cni::MAX_PODS_LOW_CPU) });
        if ppn > mp.uncapped {
            return Err(Error::Layout {
                field: "network.demand.pods_per_node".into(),
                message: format!(
                    "{} runs at most {} pods with these CNI settings, asked for {ppn}",
                    d.instance_type, mp.uncapped
                ),
            });
        }
        let f = cni::node_footprint(l, &opts, ppn);
        let scale = |x: u64| (x * d.nodes_per_az as u64 * (100 + d.headroom_percent as u64)).div_ceil(100);
        if opts.custom_networking {
            node_demand = Some((scale(f.node_subnet_ips as u64), 0));
            pod_demand = Some((scale(f.pod_subnet_ips as u64), scale(f.prefixes as u64)));
        } else {
            node_demand = Some((scale(f.node_subnet_ips as u64), scale(f.prefixes as u64)));
        }
        footprint = Some(f);
        pods_per_node = Some(ppn);
    }

    let tier_prefix = |tier: &str,
                       explicit: Option<u8>,
                       demand: Option<(u64, u64)>,
                       free: u64|
     -> Result<Option<u8>, Error> {
        let field = format!("network.subnets.{tier}.prefix");
        let Some((ips, prefixes)) = demand else { return Ok(explicit) };
        let fits = cni::smallest_prefix_for(ips, prefixes, free).ok_or_else(|| Error::Layout {
            field: "network.demand".into(),
            message: format!(
                "the {tier} demand per zone ({ips} addresses, {prefixes} /28 prefixes) exceeds even a /16 subnet"
            ),
        })?;
        match explicit {
            Some(p) if !cni::subnet_fits(p, ips, prefixes, free) => Err(Error::Layout {
                field,
                message: format!(
                    "a /{p} subnet is too small for the demand per zone ({ips} addresses, {prefixes} /28 prefixes, {free} kept free); it needs a /{fits} or larger"
                ),
            }),
            Some(p) => Ok(Some(p)),
            None => Ok(Some(fits)),
        }
    };

    let mut requests = Vec::new();
    let public_prefix = if n.subnets.public.enabled {
        Some(n.subnets.public.prefix.unwrap_or_else(|| (vpc.prefix_len() + 2 + ceil_log2(zones)).clamp(24, 28)))
    } else {
        None
    };
    let private_prefix = tier_prefix("private", n.subnets.private.prefix, node_demand, EKS_UPGRADE_FREE as u64)?;
    let private_prefix = match private_prefix {
        Some(p) => p,
        None => {
            // the largest equal share of what the public tier leaves
            let left = (1u64 << (32 - vpc.prefix_len())) - public_prefix.map_or(0, |p| zones << (32 - p));
            let share = left / zones;
            if share < 16 {
                return Err(Error::Layout {
                    field: "network.cidr".into(),
                    message: format!("{vpc} leaves no room for private subnets"),
                });
            }
            (32 - (63 - share.leading_zeros()) as u8).min(28)
        }
    };
    for az in &all_zones {
        if let Some(p) = public_prefix {
            requests.push((Tier::Public, az.clone(), p));
        }
    }
    for az in &all_zones {
        requests.push((Tier::Private, az.clone(), private_prefix));
    }
    let vpc_requests: Vec<CarveRequest> = requests
        .iter()
        .map(|(t, az, p)| CarveRequest { label: format!("{t} subnet in {az} (/{p})"), prefix: *p })
        .collect();
    let cidrs = carve(vpc, &vpc_requests)
        .map_err(|e| Error::Layout { field: "network.cidr".into(), message: e.to_string() })?;

    let mut subnets: Vec<SubnetPlan> = requests
        .iter()
        .zip(cidrs)
        .map(|((tier, az, _), cidr)| SubnetPlan {
            tier: *tier,
            az: az.clone(),
            cidr,
            usable: 0,
            pod_ips: None,
            node_capacity: None,
            ipv6_index: None,
        })
        .collect();

    if let Some(sec) = custom {
        let p = tier_prefix("pods", n.subnets.pods.prefix, pod_demand, 0)?;
        let p = match p {
            Some(p) => p,
            None => (sec.prefix_len() + ceil_log2(zones)).min(28),
        };
        let reqs: Vec<CarveRequest> =
            azs.iter().map(|az| CarveRequest { label: format!("pods subnet in {az} (/{p})"), prefix: p }).collect();
        let cidrs = carve(sec, &reqs).map_err(|e| Error::Layout {
            field: "network.cni.custom_networking.secondary_cidr".into(),
            message: e.to_string(),
        })?;
        for (az, cidr) in azs.iter().zip(cidrs) {
            subnets.push(SubnetPlan {
                tier: Tier::Pods,
                az: az.clone(),
                cidr,
                usable: 0,
                pod_ips: None,
                node_capacity: None,
                ipv6_index: None,
            });
        }
    }

    let pd = opts.prefix_delegation && footprint.is_none_or(|f| f.prefixes > 0);
    for s in &mut subnets {
        if spec.dual_stack() {
            let tier = match s.tier {
                Tier::Public => 0u8,
                Tier::Private => 1,
                Tier::Pods => 2,
            };
            // no region has more than a handful of zones, far below 64: a tier never spills into the next one's
            let zone = azs.iter().position(|a| a == &s.az).unwrap_or(0).min(63) as u8;
            s.ipv6_index = Some(tier * 64 + zone);
        }
        let size = 1u64 << (32 - s.cidr.prefix_len());
        s.usable = (size - cni::AWS_RESERVED_PER_SUBNET as u64) as u32;
        let holds_pods = match s.tier {
            _ if opts.ipv6 => false,
            Tier::Public => false,
            Tier::Private => !opts.custom_networking,
            Tier::Pods => true,
        };
        if holds_pods {
            let free = if s.tier == Tier::Private { EKS_UPGRADE_FREE as u64 } else { 0 };
            s.pod_ips = Some(if pd { (size / 16).saturating_sub(2 + free) * 16 } else { s.usable as u64 - free });
        }
        if let Some(f) = footprint {
            let (ips, prefixes) = match (s.tier, opts.custom_networking) {
                (Tier::Public, _) => continue,
                (Tier::Private, false) => (f.node_subnet_ips as u64, f.prefixes as u64),
                (Tier::Private, true) => (f.node_subnet_ips as u64, 0),
                (Tier::Pods, _) => (f.pod_subnet_ips as u64, f.prefixes as u64),
            };
            let free = if s.tier == Tier::Private { EKS_UPGRADE_FREE as u64 } else { 0 };
            // largest node count that still fits (monotone, so binary search)
            let (mut lo, mut hi) = (0u64, size);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if cni::subnet_fits(s.cidr.prefix_len(), ips * mid, prefixes * mid, free) {
                    lo = mid
                } else {
                    hi = mid - 1
                }
            }
            s.node_capacity = Some(lo);
        }
    }
    let used: u64 = subnets.iter().filter(|s| s.tier != Tier::Pods).map(|s| 1u64 << (32 - s.cidr.prefix_len())).sum();
    Ok(Layout {
        vpc,
        secondary: custom,
        azs,
        local_zones,
        subnets,
        unallocated: (1u64 << (32 - vpc.prefix_len())) - used,
        pods_per_node,
        node_footprint: footprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zone(name: &str, zone_type: &str, opt_in: &str) -> ListedZone {
        ListedZone { name: name.into(), zone_type: Some(zone_type.into()), opt_in_status: Some(opt_in.into()) }
    }

    #[test]
    fn zones_are_the_regions_first_standard_ones_by_name() {
        // ap-northeast-1 as EC2 lists it to a new account: no `b` zone, and a Local Zone beside
        let listed = [
            zone("ap-northeast-1d", "availability-zone", "opt-in-not-required"),
            zone("ap-northeast-1a", "availability-zone", "opt-in-not-required"),
            zone("ap-northeast-1-tpe-1a", "local-zone", "opted-in"),
            zone("ap-northeast-1c", "availability-zone", "opt-in-not-required"),
        ];
        assert_eq!(pick_zones(&listed, 2).unwrap(), ["ap-northeast-1a", "ap-northeast-1c"]);
        assert_eq!(pick_zones(&listed, 3).unwrap(), ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]);
        let err = pick_zones(&listed, 4).unwrap_err().to_string();
        assert!(err.starts_with("network.azs:") && err.contains("offers 3"), "{err}");
        // a zone the account has not opted into is not used; one without a type or status is
        let mut more = listed.to_vec();
        more.push(zone("ap-northeast-1b", "availability-zone", "not-opted-in"));
        more.push(ListedZone { name: "ap-northeast-1e".into(), zone_type: None, opt_in_status: None });
        assert_eq!(pick_zones(&more, 4).unwrap()[3], "ap-northeast-1e");
    }

    #[test]
    fn local_zones_are_checked_against_the_listing() {
        let listed = [
            zone("us-west-2a", "availability-zone", "opt-in-not-required"),
            zone("us-west-2-lax-1a", "local-zone", "opted-in"),
            zone("us-west-2-den-1a", "local-zone", "not-opted-in"),
        ];
        assert!(check_local_zones(&listed, &["us-west-2-lax-1a".into()]).is_ok());
        let err = |z: &str| check_local_zones(&listed, &["us-west-2-lax-1a".into(), z.into()]).unwrap_err().to_string();
        assert!(err("us-west-2-den-1a").starts_with("network.local_zones[1]: the account has not opted in"));
        assert!(err("us-west-2-phx-2a").contains("lists no zone"));
        assert!(err("us-west-2a").contains("is a availability-zone, not a Local Zone"));
    }

    #[test]
    fn local_zones_get_both_tiers_after_the_regions_zones() {
        let l = plan(&spec(
            "name: a\nregion: us-west-2\nnetwork: {cidr: 10.0.0.0/16, azs: [us-west-2a, us-west-2b], local_zones: [us-west-2-lax-1a]}",
        ))
        .unwrap();
        let got: Vec<String> = l.subnets.iter().map(|s| format!("{} {} {}", s.tier, s.az, s.cidr)).collect();
        assert_eq!(
            got,
            [
                "public us-west-2a 10.0.192.0/24",
                "public us-west-2b 10.0.193.0/24",
                "public us-west-2-lax-1a 10.0.194.0/24",
                "private us-west-2a 10.0.0.0/18",
                "private us-west-2b 10.0.64.0/18",
                "private us-west-2-lax-1a 10.0.128.0/18",
            ]
        );
        assert_eq!(l.azs, ["us-west-2a", "us-west-2b"]);
        assert!(l.is_local("us-west-2-lax-1a") && !l.is_local("us-west-2a"));
        assert_eq!(l.subnets[5].key(), "subnet/private/us-west-2-lax-1a");
    }

    fn spec(yaml: &str) -> EnvironmentSpec {
        let s = EnvironmentSpec::from_yaml(yaml).unwrap();
        assert_eq!(s.validate(), vec![], "fixture must be structurally valid");
        s
    }

    #[test]
    fn default_layout_of_a_16_in_three_zones() {
        let l = plan(&spec("name: a\nregion: us-east-1\nnetwork: {cidr: 10.0.0.0/16, azs: 3}")).unwrap();
        let got: Vec<String> = l.subnets.iter().map(|s| format!("{} {} {}", s.tier, s.az, s.cidr)).collect();
        assert_eq!(
            got,
            [
                "public us-east-1a 10.0.192.0/24",
                "public us-east-1b 10.0.193.0/24",
                "public us-east-1c 10.0.194.0/24",
                "private us-east-1a 10.0.0.0/18",
                "private us-east-1b 10.0.64.0/18",
                "private us-east-1c 10.0.128.0/18",
            ]
        );
        assert_eq!(l.unallocated, 65536 - 3 * 16384 - 3 * 256);
        assert_eq!(l.subnets[3].pod_ips, Some(16384 - 5 - 5));
    }

    #[test]
    fn demand_sizes_private_subnets_and_too_small_vpc_says_by_how_much() {
        let s = spec(
            "name: a\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/19\n  azs: 2\n  demand: {nodes_per_az: 50, instance_type: m5.large, pods_per_node: 20}\n",
        );
        let l = plan(&s).unwrap();
        // 50 nodes x 30 addresses (3 ENIs x 10) x 1.2 = 1800 + 5 free + 5 reserved -> /21
        assert_eq!(l.subnets.iter().find(|s| s.tier == Tier::Private).unwrap().cidr.prefix_len(), 21);
        let mut s2 = s.clone();
        s2.network.demand.as_mut().unwrap().nodes_per_az = 60;
        let e = plan(&s2).unwrap_err().to_string();
        assert!(e.contains("network.cidr") && e.contains("short by"), "{e}");
        let mut s3 = s.clone();
        s3.network.subnets.private.prefix = Some(24);
        let e = plan(&s3).unwrap_err().to_string();
        assert!(e.contains("network.subnets.private.prefix") && e.contains("/21"), "{e}");
        let mut s4 = s;
        s4.network.demand.as_mut().unwrap().instance_type = "m5.giant".into();
        assert!(plan(&s4).unwrap_err().to_string().contains("network.demand.instance_type"));
    }

    #[test]
    fn custom_networking_puts_pods_in_the_secondary_cidr() {
        let s = spec(
            "name: a\nregion: us-east-1\nnetwork:\n  cidr: 10.0.0.0/22\n  azs: 2\n  cni: {mode: prefix-delegation, custom_networking: {secondary_cidr: 100.64.0.0/16}}\n  demand: {nodes_per_az: 20, instance_type: m5.xlarge}\n",
        );
        let l = plan(&s).unwrap();
        let pods: Vec<_> = l.subnets.iter().filter(|s| s.tier == Tier::Pods).collect();
        assert_eq!(pods.len(), 2);
        assert!(pods.iter().all(|p| l.secondary.unwrap().contains(&p.cidr)));
        assert!(pods[0].node_capacity.unwrap() >= 20);
    }

    #[test]
    fn carve_error_message() {
        let e = carve(
            "10.0.0.0/24".parse().unwrap(),
            &[CarveRequest { label: "a".into(), prefix: 24 }, CarveRequest { label: "b".into(), prefix: 25 }],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the subnets need 384 addresses but 10.0.0.0/24 holds 256: short by 128 (a /23 would fit)"
        );
    }

    #[test]
    fn dual_stack_gives_each_subnet_its_own_64_and_a_zone_added_moves_none() {
        let two = "name: a\nregion: eu-north-1\nnetwork: {cidr: 10.10.0.0/16, azs: 2, ipv6: true, cni: {custom_networking: {secondary_cidr: 100.64.0.0/16}}}";
        let l = plan(&spec(two)).unwrap();
        let got: Vec<(String, Option<u8>)> = l.subnets.iter().map(|s| (s.key(), s.ipv6_index)).collect();
        assert_eq!(
            got,
            [
                ("subnet/public/eu-north-1a".to_string(), Some(0)),
                ("subnet/public/eu-north-1b".to_string(), Some(1)),
                ("subnet/private/eu-north-1a".to_string(), Some(64)),
                ("subnet/private/eu-north-1b".to_string(), Some(65)),
                ("subnet/pods/eu-north-1a".to_string(), Some(128)),
                ("subnet/pods/eu-north-1b".to_string(), Some(129)),
            ]
        );
        let three = plan(&spec(&two.replace("azs: 2", "azs: 3"))).unwrap();
        for s in &l.subnets {
            let same = three.subnets.iter().find(|t| t.key() == s.key()).unwrap();
            assert_eq!(same.ipv6_index, s.ipv6_index, "{} keeps its block", s.key());
        }
        assert!(plan(&spec(&two.replace("ipv6: true, ", ""))).unwrap().subnets.iter().all(|s| s.ipv6_index.is_none()));

        // what moto handed out in a measured run: a /56, and the 4th /64 of it as CreateSubnet made it
        let vpc: Ipv6Net = "2400:6500:6cf0:5800::/56".parse().unwrap();
        assert_eq!(ipv6_subnet(vpc, 3).to_string(), "2400:6500:6cf0:5803::/64");
        assert_eq!(ipv6_subnet(vpc, 255).to_string(), "2400:6500:6cf0:58ff::/64");
        assert_eq!(ipv6_index(vpc, "2001:db8::/64".parse().unwrap()), None, "outside the VPC's block");
        assert_eq!(ipv6_index(vpc, "2400:6500:6cf0:5800::/60".parse().unwrap()), None, "not a /64");
    }

    proptest! {
        /// Every /64 index of a /56 lies inside it and maps back to itself; two indexes never share a block.
        #[test]
        fn ipv6_blocks_round_trip(hi in any::<u64>(), i in any::<u8>(), j in any::<u8>()) {
            let vpc = Ipv6Net::new(std::net::Ipv6Addr::from((hi as u128) << 64), 56).unwrap().trunc();
            let b = ipv6_subnet(vpc, i);
            prop_assert!(vpc.contains(&b));
            prop_assert_eq!(ipv6_index(vpc, b), Some(i));
            prop_assert_eq!(i == j, b == ipv6_subnet(vpc, j));
        }

        /// Subnets lie inside the VPC, are pairwise disjoint, honour requested sizes, are the same size in
        /// every zone of a tier, and the same spec always gives the same layout.
        #[test]
        fn layouts_are_sound(vpc_len in 16u8..=24, a in 0u8..=255, b in 0u8..=255, zones in 2u8..=6,
                             pub_extra in proptest::option::of(0u8..=6), priv_extra in proptest::option::of(0u8..=8), nat_none: bool) {
            let vpc: Ipv4Net = Ipv4Net::new(std::net::Ipv4Addr::new(10, a, b, 0), vpc_len).unwrap().trunc();
            let mut s = spec(&format!("name: a\nregion: us-east-1\nnetwork: {{cidr: {vpc}, azs: {zones}}}"));
            s.network.subnets.public.prefix = pub_extra.map(|e| (vpc_len + 3 + e).min(28));
            s.network.subnets.private.prefix = priv_extra.map(|e| (vpc_len + 3 + e).min(28));
            if nat_none { s.network.nat = eksodus_core::spec::NatMode::None; s.network.subnets.public.enabled = false; }
            match plan(&s) {
                Ok(l) => {
                    prop_assert_eq!(&l, &plan(&s).unwrap());
                    for (i, x) in l.subnets.iter().enumerate() {
                        prop_assert!(vpc.contains(&x.cidr));
                        for y in &l.subnets[i + 1..] {
                            prop_assert!(!x.cidr.contains(&y.cidr.network()) && !y.cidr.contains(&x.cidr.network()), "{} overlaps {}", x.cidr, y.cidr);
                        }
                        if let (Tier::Public, Some(p)) = (x.tier, s.network.subnets.public.prefix) { prop_assert_eq!(x.cidr.prefix_len(), p); }
                        if let (Tier::Private, Some(p)) = (x.tier, s.network.subnets.private.prefix) { prop_assert_eq!(x.cidr.prefix_len(), p); }
                        let same_tier: Vec<_> = l.subnets.iter().filter(|y| y.tier == x.tier).collect();
                        prop_assert!(same_tier.iter().all(|y| y.cidr.prefix_len() == x.cidr.prefix_len()));
                        prop_assert_eq!(same_tier.len(), zones as usize);
                    }
                }
                Err(e) => {
                    // only explicit sizes can fail to fit, and the error says by how much
                    prop_assert!(pub_extra.is_some() || priv_extra.is_some(), "{}", e);
                    prop_assert!(e.to_string().contains("short by") || e.to_string().contains("no room"), "{}", e);
                }
            }
        }

        #[test]
        fn carve_fits_iff_total_fits(prefixes in proptest::collection::vec(16u8..=28, 1..40)) {
            let parent: Ipv4Net = "10.0.0.0/16".parse().unwrap();
            let reqs: Vec<CarveRequest> = prefixes.iter().map(|p| CarveRequest { label: String::new(), prefix: *p }).collect();
            let total: u64 = prefixes.iter().map(|p| 1u64 << (32 - p)).sum();
            match carve(parent, &reqs) {
                Ok(out) => {
                    prop_assert!(total <= 65536);
                    for (i, x) in out.iter().enumerate() {
                        prop_assert_eq!(x.prefix_len(), prefixes[i]);
                        prop_assert!(parent.contains(x));
                        for y in &out[i + 1..] { prop_assert!(!x.contains(&y.network()) && !y.contains(&x.network())); }
                    }
                }
                Err(e) => { prop_assert!(total > 65536); prop_assert_eq!(e.needed - e.available, total - 65536); }
            }
        }
    }
}
