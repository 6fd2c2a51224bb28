//! Typed desired properties of the network's resources, one type per kind.
//!
//! Plans carry properties as JSON maps; the planner builds them from these types, and the executor checks a
//! step's desired map against its kind's type before any call, so a key the planner and the executor spell
//! differently, or a plan from another version, is a permanent error naming the resource instead of a
//! silent default (a subnet without public IPs, a VPC without DNS).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcProps {
    /// Primary CIDR.
    pub cidr: String,
    /// `enableDnsSupport`.
    pub dns_support: bool,
    /// `enableDnsHostnames`.
    pub dns_hostnames: bool,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// A secondary CIDR of the VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcCidrProps {
    /// The CIDR.
    pub cidr: String,
}

/// The VPC's IPv6 block (dual-stack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcIpv6CidrProps {
    /// Where the block comes from: `Amazon`, a /56 of Amazon's pool (EC2's `Ipv6Pool` name for it).
    pub pool: String,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetProps {
    /// CIDR.
    pub cidr: String,
    /// Availability zone.
    pub az: String,
    /// `mapPublicIpOnLaunch`.
    pub map_public_ip: bool,
    /// Which /64 of the VPC's IPv6 block the subnet has (dual-stack), or none. Always written (`null` when
    /// off), so a subnet that has a block and should not is seen to differ.
    #[serde(default)]
    pub ipv6_index: Option<u8>,
    /// `assignIpv6AddressOnCreation`: instances launched here get an IPv6 address of the subnet's block (an
    /// IPv6 cluster's nodes need one). Always written.
    #[serde(default)]
    pub assign_ipv6: bool,
    /// `privateDnsNameOptionsOnLaunch.hostnameType`: `ip-name` or `resource-name`.
    #[serde(default = "ip_name")]
    pub hostname_type: String,
    /// Role and cluster tags with the user's.
    pub tags: BTreeMap<String, String>,
}

fn ip_name() -> String {
    "ip-name".into()
}

/// The internet gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternetGatewayProps {
    /// Attached to the VPC.
    pub attached: bool,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// A resource whose only property is its tags (a route table, an Elastic IP).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsOnly {
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// A NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatGatewayProps {
    /// Key of its public subnet.
    pub subnet: String,
    /// Key of its Elastic IP.
    pub eip: String,
    /// Available (a failed one is replaced).
    pub healthy: bool,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteProps {
    /// Key of its route table.
    pub route_table: String,
    /// Destination CIDR.
    pub destination: String,
    /// Key of its target (`igw`, `nat/<az>`).
    pub target: String,
}

/// A route table association.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtAssociationProps {
    /// Key of the route table.
    pub route_table: String,
    /// Key of the subnet.
    pub subnet: String,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupProps {
    /// Group name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Members may reach each other on every port.
    pub self_ingress: bool,
    /// Security groups whose members may reach port 22 (TCP) of this group's members (sorted). Set, even
    /// empty, on a nodegroup's SSH group, whose port-22 rules eksodus keeps to exactly these; left out on the
    /// other groups, so they keep the properties they always had and a rule of someone else's is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_from: Option<Vec<String>>,
    /// IPv4 CIDRs that may reach port 22 (TCP), as `ssh_from` is set and left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_from_cidrs: Option<Vec<String>>,
    /// CIDRs that may reach port 443 (TCP) of this group's members (sorted; the VPC endpoints' group). Left
    /// out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub https_from: Vec<String>,
    /// Hybrid nodes' and their pods' networks that may reach port 443 (TCP) of the control plane (sorted):
    /// set, even empty, on the cluster's group alone. eksodus keeps exactly these among the rules that carry
    /// its description ([`REMOTE_RULE_DESCRIPTION`](super::REMOTE_RULE_DESCRIPTION)), and no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_https_from: Option<Vec<String>>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// A VPC endpoint of an AWS service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcEndpointProps {
    /// The endpoint service's name (`com.amazonaws.<region>.<service>`).
    pub service: String,
    /// `Interface` or `Gateway`.
    pub endpoint_type: String,
    /// Keys of the subnets an interface endpoint has an interface in (sorted).
    pub subnets: Vec<String>,
    /// Keys of the route tables a gateway endpoint routes from (sorted).
    pub route_tables: Vec<String>,
    /// Keys of an interface endpoint's security groups.
    pub security_groups: Vec<String>,
    /// Whether the service's own DNS name resolves to the interfaces (interface endpoints).
    pub private_dns: bool,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// Properties as the engine carries them.
pub(crate) fn to_props<T: Serialize>(t: &T) -> Map<String, Value> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => m,
        // every type here is a struct of strings, booleans and maps: it always serializes to an object
        _ => unreachable!("typed properties serialize to a JSON object"),
    }
}

fn fits<T: for<'de> Deserialize<'de>>(m: &Map<String, Value>) -> Result<(), String> {
    serde_json::from_value::<T>(Value::Object(m.clone())).map(|_| ()).map_err(|e| e.to_string())
}

/// Checks desired properties against their kind's type; the error names the resource and what is wrong.
pub fn check(kind: &str, key: &str, m: &Map<String, Value>) -> Result<(), String> {
    let r = match kind {
        "vpc" => fits::<VpcProps>(m),
        "vpc-cidr" => fits::<VpcCidrProps>(m),
        "vpc-ipv6-cidr" => fits::<VpcIpv6CidrProps>(m),
        "subnet" => fits::<SubnetProps>(m),
        "internet-gateway" => fits::<InternetGatewayProps>(m),
        "route-table" | "eip" | "egress-only-igw" => fits::<TagsOnly>(m),
        "nat-gateway" => fits::<NatGatewayProps>(m),
        "route" => fits::<RouteProps>(m),
        "rt-association" => fits::<RtAssociationProps>(m),
        "security-group" => fits::<SecurityGroupProps>(m),
        "vpc-endpoint" => fits::<VpcEndpointProps>(m),
        other => Err(format!("unknown kind {other}")),
    };
    r.map_err(|e| format!("the desired properties of {key} do not match what this version of eksodus plans: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelled_or_missing_key_is_refused_by_kind() {
        let sub = SubnetProps {
            cidr: "10.0.0.0/24".into(),
            az: "us-east-1a".into(),
            map_public_ip: true,
            ipv6_index: None,
            assign_ipv6: false,
            hostname_type: "ip-name".into(),
            tags: BTreeMap::new(),
        };
        let mut m = to_props(&sub);
        assert_eq!(check("subnet", "subnet/public/us-east-1a", &m), Ok(()));
        let v = m.remove("map_public_ip").unwrap();
        m.insert("map_public_ips".into(), v);
        let err = check("subnet", "subnet/public/us-east-1a", &m).unwrap_err();
        assert!(err.contains("subnet/public/us-east-1a") && err.contains("map_public_ips"), "{err}");
        assert!(check("vpc", "vpc", &to_props(&sub)).is_err(), "a subnet's properties are not a VPC's");
    }
}
