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
//!   one leaves its route behind: the proxy writes and removes those routes in moto ([`RouteTableChange`]);
//! - moto knows no Local Zones: `DescribeAvailabilityZones` lists none and `CreateSubnet` refuses one. The
//!   proxy lists the emulator's [`LOCAL_ZONES`] (as opted into), makes a Local Zone's subnet in moto in the
//!   zone's parent, and writes the Local Zone back into every answer that shows the subnet.

use std::collections::HashMap;
use std::sync::Mutex;

/// The hostname types set on subnets, and the subnets in Local Zones, by subnet ID (IDs are unique across
/// moto's accounts).
#[derive(Debug, Default)]
pub struct Ec2State {
    hostnames: Mutex<HashMap<String, String>>,
    local: Mutex<HashMap<String, &'static LocalZone>>,
}

/// A Local Zone the emulator offers, as `DescribeAvailabilityZones` describes one.
#[derive(Debug, PartialEq, Eq)]
pub struct LocalZone {
    /// Its region.
    pub region: &'static str,
    /// `us-west-2-lax-1a`.
    pub name: &'static str,
    /// Its zone ID.
    pub id: &'static str,
    /// Its zone group (and network border group).
    pub group: &'static str,
    /// The availability zone it hangs off, where moto keeps its subnets (the emulator's choice).
    pub parent: &'static str,
}

/// The Local Zones the emulator offers, all opted into: Los Angeles' two in us-west-2 (the zones of eksctl's
/// Local Zones example) and Boston's in us-east-1.
pub const LOCAL_ZONES: &[LocalZone] = &[
    LocalZone {
        region: "us-west-2",
        name: "us-west-2-lax-1a",
        id: "usw2-lax1-az1",
        group: "us-west-2-lax-1",
        parent: "us-west-2a",
    },
    LocalZone {
        region: "us-west-2",
        name: "us-west-2-lax-1b",
        id: "usw2-lax1-az2",
        group: "us-west-2-lax-1",
        parent: "us-west-2a",
    },
    LocalZone {
        region: "us-east-1",
        name: "us-east-1-bos-1a",
        id: "use1-bos1-az1",
        group: "us-east-1-bos-1",
        parent: "us-east-1a",
    },
];

fn local_zone(name: &str) -> Option<&'static LocalZone> {
    LOCAL_ZONES.iter().find(|z| z.name == name)
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

    /// The request moto is sent in place of `request`, when it names a Local Zone moto does not know: a
    /// `CreateSubnet` in one is made in the zone's parent.
    pub fn to_moto(&self, operation: &str, request: &[u8]) -> Option<Vec<u8>> {
        if operation != "CreateSubnet" {
            return None;
        }
        let zone = local_zone(&form_value(request, "AvailabilityZone")?)?;
        let body = std::str::from_utf8(request).ok()?;
        let pairs: Vec<String> = body
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("AvailabilityZone", _)) => format!("AvailabilityZone={}", zone.parent),
                _ => pair.to_string(),
            })
            .collect();
        Some(pairs.join("&").into_bytes())
    }

    /// The Local Zone subnet `id` is in, if it is in one.
    pub fn local_zone_of(&self, id: &str) -> Option<&'static str> {
        self.local.lock().expect("local zones").get(id).map(|z| z.name)
    }

    /// Notes what a successful call moto answered changed, and puts its answer right. `region` is the one the
    /// call was signed for.
    pub fn answered(&self, operation: &str, region: &str, request: &[u8], answer: &str) -> Option<String> {
        if operation == "DescribeAvailabilityZones" {
            return Some(with_local_zones(answer, region, &form_list(request, "ZoneName")));
        }
        if operation == "CreateSubnet" {
            let zone = form_value(request, "AvailabilityZone").and_then(|z| local_zone(&z));
            if let (Some(zone), Some(id)) = (zone, xml_between(answer, "<subnetId>", "</subnetId>")) {
                self.local.lock().expect("local zones").insert(id.to_string(), zone);
            }
        }
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
                    self.local.lock().expect("local zones").remove(&id);
                }
                None
            }
            "DescribeSubnets" | "CreateSubnet" => {
                let fixed = fix_block_states(answer);
                let hostnames = self.hostnames.lock().expect("hostnames");
                let fixed = hostnames.iter().fold(fixed, |xml, (id, t)| with_hostname_type(&xml, id, t));
                let local = self.local.lock().expect("local zones");
                Some(local.iter().fold(fixed, |xml, (id, z)| with_zone(&xml, id, z)))
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

/// The text between the first `open` and the `close` after it.
fn xml_between<'a>(xml: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = xml.find(open)? + open.len();
    let len = xml[start..].find(close)?;
    Some(&xml[start..start + len])
}

/// A `DescribeAvailabilityZones` answer with the region's Local Zones after moto's zones (those of `names`
/// only, when the call names zones).
fn with_local_zones(xml: &str, region: &str, names: &[String]) -> String {
    const CLOSE: &str = "</availabilityZoneInfo>";
    let items: String = LOCAL_ZONES
        .iter()
        .filter(|z| z.region == region && (names.is_empty() || names.iter().any(|n| n == z.name)))
        .map(|z| {
            format!(
                "<item><messageSet/><regionName>{}</regionName><zoneName>{}</zoneName><zoneId>{}</zoneId>\
                 <zoneType>local-zone</zoneType><zoneState>available</zoneState><optInStatus>opted-in</optInStatus>\
                 <groupName>{}</groupName><networkBorderGroup>{}</networkBorderGroup>\
                 <parentZoneName>{}</parentZoneName></item>",
                z.region, z.name, z.id, z.group, z.group, z.parent
            )
        })
        .collect();
    if items.is_empty() {
        return xml.to_string();
    }
    match xml.find(CLOSE) {
        Some(at) => format!("{}{items}{}", &xml[..at], &xml[at..]),
        // moto writes an empty list as a self-closed element
        None => xml.replacen("<availabilityZoneInfo/>", &format!("<availabilityZoneInfo>{items}{CLOSE}"), 1),
    }
}

/// Writes Local Zone `z` as the zone of subnet `id` in a subnet answer: the `availabilityZone` and
/// `availabilityZoneId` of the element (`<item>` of a list, or `<subnet>`) that holds the subnet's ID, not of
/// the elements nested in it or beside it.
fn with_zone(xml: &str, id: &str, z: &LocalZone) -> String {
    let Some(at) = xml.find(&format!("<subnetId>{id}</subnetId>")) else { return xml.to_string() };
    let is_open = |r: &str| r.starts_with("<item>") || r.starts_with("<subnet>");
    let is_close = |r: &str| r.starts_with("</item>") || r.starts_with("</subnet>");
    // the innermost `<item>` or `<subnet>` open at the ID is the subnet's element
    let mut open = Vec::new();
    for (p, _) in xml[..at].match_indices('<') {
        if is_open(&xml[p..]) {
            open.push(p);
        } else if is_close(&xml[p..]) {
            open.pop();
        }
    }
    let Some(&start) = open.last() else { return xml.to_string() };
    let mut depth = 0usize;
    for (off, _) in xml[at..].match_indices('<') {
        let p = at + off;
        if is_open(&xml[p..]) {
            depth += 1;
        } else if is_close(&xml[p..]) {
            if depth == 0 {
                let inner = retag(&xml[start..p], "availabilityZone", z.name);
                let inner = retag(&inner, "availabilityZoneId", z.id);
                return format!("{}{inner}{}", &xml[..start], &xml[p..]);
            }
            depth -= 1;
        }
    }
    xml.to_string()
}

/// Replaces the value of every `<tag>` in `element` (a subnet's nested lists, tags and IPv6 blocks, hold no
/// zone fields).
fn retag(element: &str, tag: &str, value: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = String::with_capacity(element.len());
    let mut rest = element;
    while let Some(s) = rest.find(&open) {
        let Some(len) = rest[s + open.len()..].find(&close) else { break };
        out.push_str(&rest[..s + open.len()]);
        out.push_str(value);
        rest = &rest[s + open.len() + len..];
    }
    out.push_str(rest);
    out
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
        assert_eq!(st.answered("ModifySubnetAttribute", "us-east-1", set, ""), None);
        let out = st.answered("DescribeSubnets", "us-east-1", b"Action=DescribeSubnets", ANSWER).unwrap();
        let a = &out[..out.find("<subnetId>subnet-a").unwrap()];
        let b = &out[out.find("<subnetId>subnet-a").unwrap()..];
        assert!(a.contains("<hostnameType>ip-name</hostnameType>"), "{out}");
        assert!(b.contains("<hostnameType>resource-name</hostnameType>"), "{out}");
        assert!(out.contains("<ipv6CidrBlockState><state>associated</state>"), "{out}");
        assert!(!out.contains('{'), "{out}");

        // a subnet moto no longer lists is left alone, and a deleted one forgotten
        let only_a = ANSWER.replace("subnet-b", "subnet-c");
        assert!(!st.answered("DescribeSubnets", "us-east-1", b"", &only_a).unwrap().contains("resource-name"));
        st.answered("DeleteSubnet", "us-east-1", b"Action=DeleteSubnet&SubnetId=subnet-b", "");
        assert!(!st.answered("DescribeSubnets", "us-east-1", b"", ANSWER).unwrap().contains("resource-name"));

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

    #[test]
    fn local_zones_are_listed_and_their_subnets_made_in_the_parent_and_shown_in_the_local_zone() {
        let st = Ec2State::default();
        let zones = "<DescribeAvailabilityZonesResponse><availabilityZoneInfo><item><zoneName>us-west-2a</zoneName></item></availabilityZoneInfo></DescribeAvailabilityZonesResponse>";
        let listed =
            st.answered("DescribeAvailabilityZones", "us-west-2", b"Action=DescribeAvailabilityZones", zones).unwrap();
        assert!(listed.contains("<zoneName>us-west-2a</zoneName></item><item>"), "{listed}");
        assert_eq!(listed.matches("<zoneType>local-zone</zoneType>").count(), 2, "{listed}");
        assert!(listed.contains("<optInStatus>opted-in</optInStatus>"));
        let named =
            st.answered("DescribeAvailabilityZones", "us-west-2", b"ZoneName.1=us-west-2-lax-1b", zones).unwrap();
        assert_eq!(named.matches("local-zone").count(), 1);
        assert!(!st.answered("DescribeAvailabilityZones", "eu-west-1", b"", zones).unwrap().contains("local-zone"));

        let create = b"Action=CreateSubnet&VpcId=vpc-1&CidrBlock=10.0.2.0%2F24&AvailabilityZone=us-west-2-lax-1a";
        let sent = String::from_utf8(st.to_moto("CreateSubnet", create).unwrap()).unwrap();
        assert_eq!(sent, "Action=CreateSubnet&VpcId=vpc-1&CidrBlock=10.0.2.0%2F24&AvailabilityZone=us-west-2a");
        assert_eq!(st.to_moto("CreateSubnet", b"Action=CreateSubnet&AvailabilityZone=us-west-2b"), None);
        let made = "<CreateSubnetResponse><subnet><availabilityZoneId>usw2-az2</availabilityZoneId><tagSet><item><key>k</key></item></tagSet><subnetId>subnet-l</subnetId><availabilityZone>us-west-2a</availabilityZone></subnet></CreateSubnetResponse>";
        let shown = st.answered("CreateSubnet", "us-west-2", create, made).unwrap();
        assert!(shown.contains("<availabilityZone>us-west-2-lax-1a</availabilityZone>"), "{shown}");
        assert!(shown.contains("<availabilityZoneId>usw2-lax1-az1</availabilityZoneId>"), "{shown}");
        assert_eq!(st.local_zone_of("subnet-l"), Some("us-west-2-lax-1a"));

        // in a list, only the Local Zone subnet's own item changes
        let list = "<DescribeSubnetsResponse><subnetSet>\
            <item><availabilityZoneId>usw2-az2</availabilityZoneId><subnetId>subnet-r</subnetId><availabilityZone>us-west-2a</availabilityZone></item>\
            <item><availabilityZoneId>usw2-az2</availabilityZoneId><tagSet><item><key>k</key></item></tagSet><subnetId>subnet-l</subnetId><availabilityZone>us-west-2a</availabilityZone></item>\
            </subnetSet></DescribeSubnetsResponse>";
        let out = st.answered("DescribeSubnets", "us-west-2", b"Action=DescribeSubnets", list).unwrap();
        let (r, l) = out.split_at(out.find("<subnetId>subnet-l").unwrap());
        assert!(r.contains("<subnetId>subnet-r</subnetId><availabilityZone>us-west-2a<"), "{out}");
        assert!(
            r.ends_with(
                "<availabilityZoneId>usw2-lax1-az1</availabilityZoneId><tagSet><item><key>k</key></item></tagSet>"
            ),
            "{out}"
        );
        assert!(l.contains("<availabilityZone>us-west-2-lax-1a</availabilityZone></item>"), "{out}");
        st.answered("DeleteSubnet", "us-west-2", b"Action=DeleteSubnet&SubnetId=subnet-l", "");
        assert_eq!(st.local_zone_of("subnet-l"), None);
    }
}
