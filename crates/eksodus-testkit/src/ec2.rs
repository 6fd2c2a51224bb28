//! What moto's EC2 gets wrong for the subnets eksodus makes, put right by the proxy in moto's answers
//! (measured with moto 5.2.5; see the EC2 API reference for the shapes):
//!
//! - `ModifySubnetAttribute` with `PrivateDnsHostnameTypeOnLaunch` answers success and changes nothing, and
//!   `DescribeSubnets` always reports `ip-name`: the proxy keeps the type per subnet and writes it into the
//!   subnet's `privateDnsNameOptionsOnLaunch`;
//! - `DescribeSubnets` writes a subnet IPv6 block's state as a Python dict (`{'State': 'associated'}`) where
//!   EC2 writes the state's name (`associated`): the proxy writes the name;
//! - `ModifyVpcEndpoint` adding a route table to a gateway endpoint lists the table but writes no route to
//!   the service's prefix list in it (and `DeleteVpcEndpoints` then fails on the missing route), and removing
//!   one leaves its route behind: the proxy writes and removes those routes in moto ([`RouteTableChange`]).

use std::collections::HashMap;
use std::sync::Mutex;

/// The hostname types set on subnets, by subnet ID (IDs are unique across moto's accounts).
#[derive(Debug, Default)]
pub struct Ec2State {
    hostnames: Mutex<HashMap<String, String>>,
}

/// The hostname types EC2 accepts.
const HOSTNAME_TYPES: &[&str] = &["ip-name", "resource-name"];

impl Ec2State {
    /// A request the proxy answers itself instead of moto: an error in EC2's shape, as (code, message).
    pub fn refusal(&self, operation: &str, request: &[u8]) -> Option<(&'static str, String)> {
        if operation != "ModifySubnetAttribute" {
            return None;
        }
        let t = form_value(request, "PrivateDnsHostnameTypeOnLaunch")?;
        (!HOSTNAME_TYPES.contains(&t.as_str())).then(|| {
            ("InvalidParameterValue", format!("Value ({t}) for parameter privateDnsHostnameTypeOnLaunch is invalid."))
        })
    }

    /// Notes what a successful call moto answered changed, and puts its answer right.
    pub fn answered(&self, operation: &str, request: &[u8], answer: &str) -> Option<String> {
        match operation {
            "ModifySubnetAttribute" => {
                if let (Some(id), Some(t)) =
                    (form_value(request, "SubnetId"), form_value(request, "PrivateDnsHostnameTypeOnLaunch"))
                {
                    self.hostnames.lock().expect("hostnames").insert(id, t);
                }
                None
            }
            "DeleteSubnet" => {
                if let Some(id) = form_value(request, "SubnetId") {
                    self.hostnames.lock().expect("hostnames").remove(&id);
                }
                None
            }
            "DescribeSubnets" | "CreateSubnet" => {
                let fixed = fix_block_states(answer);
                let hostnames = self.hostnames.lock().expect("hostnames");
                Some(hostnames.iter().fold(fixed, |xml, (id, t)| with_hostname_type(&xml, id, t)))
            }
            _ => None,
        }
    }
}

/// The route tables a `ModifyVpcEndpoint` adds to and removes from an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTableChange {
    /// The endpoint.
    pub endpoint: String,
    /// Tables added.
    pub add: Vec<String>,
    /// Tables removed.
    pub remove: Vec<String>,
}

impl RouteTableChange {
    /// The change a request makes, if it adds or removes a table.
    pub fn of(operation: &str, request: &[u8]) -> Option<RouteTableChange> {
        if operation != "ModifyVpcEndpoint" {
            return None;
        }
        let add = form_list(request, "AddRouteTableId");
        let remove = form_list(request, "RemoveRouteTableId");
        if add.is_empty() && remove.is_empty() {
            return None;
        }
        Some(RouteTableChange { endpoint: form_value(request, "VpcEndpointId")?, add, remove })
    }
}

/// The values of a list parameter (`Name.1`, `Name.2`, ...), in order.
fn form_list(body: &[u8], name: &str) -> Vec<String> {
    (1..).map_while(|i| form_value(body, &format!("{name}.{i}"))).collect()
}

/// One parameter of a query-protocol request body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (urlencoding::decode(k).ok()? == name)
            .then(|| urlencoding::decode(&v.replace('+', " ")).ok().map(|v| v.into_owned()))?
    })
}

/// `<state>{'State': 'associated'}</state>` → `<state>associated</state>`.
fn fix_block_states(xml: &str) -> String {
    const OPEN: &str = "<state>{'State': '";
    const CLOSE: &str = "'}</state>";
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len()..];
        let Some(j) = after.find(CLOSE) else { break };
        out.push_str(&rest[..i]);
        out.push_str("<state>");
        out.push_str(&after[..j]);
        out.push_str("</state>");
        rest = &after[j + CLOSE.len()..];
    }
    out.push_str(rest);
    out
}

/// Writes `t` as the hostname type of subnet `id` in a subnet answer. moto writes a subnet's
/// `privateDnsNameOptionsOnLaunch` before its `subnetId`, in the same `<item>`: the last `<hostnameType>`
/// before the ID is the subnet's own when no other subnet's ID comes between them.
fn with_hostname_type(xml: &str, id: &str, t: &str) -> String {
    let Some(at) = xml.find(&format!("<subnetId>{id}</subnetId>")) else { return xml.to_string() };
    let head = &xml[..at];
    let Some(start) = head.rfind("<hostnameType>") else { return xml.to_string() };
    if head[start..].contains("<subnetId>") {
        return xml.to_string();
    }
    let value = start + "<hostnameType>".len();
    let Some(len) = xml[value..].find("</hostnameType>") else { return xml.to_string() };
    format!("{}{t}{}", &xml[..value], &xml[value + len..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two subnets as moto 5.2.5 writes them (one with an IPv6 block), trimmed to the parts that matter.
    const ANSWER: &str = "<DescribeSubnetsResponse><subnetSet>\
        <item><ipv6CidrBlockAssociationSet><item><associationId>subnet-cidr-assoc-1</associationId>\
        <ipv6CidrBlock>2400:6500:dd65:c001::/64</ipv6CidrBlock><ipv6CidrBlockState><state>{'State': 'associated'}</state>\
        </ipv6CidrBlockState></item></ipv6CidrBlockAssociationSet>\
        <privateDnsNameOptionsOnLaunch><hostnameType>ip-name</hostnameType></privateDnsNameOptionsOnLaunch>\
        <subnetId>subnet-a</subnetId><state>available</state></item>\
        <item><privateDnsNameOptionsOnLaunch><hostnameType>ip-name</hostnameType></privateDnsNameOptionsOnLaunch>\
        <subnetId>subnet-b</subnetId><state>available</state></item>\
        </subnetSet></DescribeSubnetsResponse>";

    #[test]
    fn hostname_types_are_kept_per_subnet_and_block_states_named() {
        let st = Ec2State::default();
        let set = b"Action=ModifySubnetAttribute&SubnetId=subnet-b&PrivateDnsHostnameTypeOnLaunch=resource-name";
        assert_eq!(st.refusal("ModifySubnetAttribute", set), None);
        assert_eq!(st.answered("ModifySubnetAttribute", set, ""), None);
        let out = st.answered("DescribeSubnets", b"Action=DescribeSubnets", ANSWER).unwrap();
        let a = &out[..out.find("<subnetId>subnet-a").unwrap()];
        let b = &out[out.find("<subnetId>subnet-a").unwrap()..];
        assert!(a.contains("<hostnameType>ip-name</hostnameType>"), "{out}");
        assert!(b.contains("<hostnameType>resource-name</hostnameType>"), "{out}");
        assert!(out.contains("<ipv6CidrBlockState><state>associated</state>"), "{out}");
        assert!(!out.contains('{'), "{out}");

        // a subnet moto no longer lists is left alone, and a deleted one forgotten
        let only_a = ANSWER.replace("subnet-b", "subnet-c");
        assert!(!st.answered("DescribeSubnets", b"", &only_a).unwrap().contains("resource-name"));
        st.answered("DeleteSubnet", b"Action=DeleteSubnet&SubnetId=subnet-b", "");
        assert!(!st.answered("DescribeSubnets", b"", ANSWER).unwrap().contains("resource-name"));

        let modify = b"Action=ModifyVpcEndpoint&VpcEndpointId=vpce-1&AddRouteTableId.1=rtb-a&AddRouteTableId.2=rtb-b&RemoveRouteTableId.1=rtb-c";
        assert_eq!(
            RouteTableChange::of("ModifyVpcEndpoint", modify),
            Some(RouteTableChange {
                endpoint: "vpce-1".into(),
                add: vec!["rtb-a".into(), "rtb-b".into()],
                remove: vec!["rtb-c".into()]
            })
        );
        assert_eq!(RouteTableChange::of("ModifyVpcEndpoint", b"VpcEndpointId=vpce-1&AddSubnetId.1=subnet-a"), None);

        let bad = b"Action=ModifySubnetAttribute&SubnetId=subnet-b&PrivateDnsHostnameTypeOnLaunch=instance-id";
        assert_eq!(st.refusal("ModifySubnetAttribute", bad).map(|r| r.0), Some("InvalidParameterValue"));
    }
}
