//! Instance type selection: the pure filter behind a nodegroup's `instance_selector`.
//!
//! EC2's `GetInstanceTypesFromInstanceRequirements` would answer the same question, but it takes no regular
//! expressions and counts memory and vCPUs in ranges only; a local filter over what `DescribeInstanceTypes`
//! and `DescribeInstanceTypeOfferings` report is as exact, works on any endpoint that answers those two, and
//! can be tested on data. The reader of those calls lives in `ec2` (feature `aws`); this module is data in,
//! data out.
//!
//! A type is chosen when it has the vCPUs, memory and GPUs asked for, runs on the architecture, is sold the
//! way the nodegroup buys (On-Demand or Spot), is offered in every zone the nodegroup's subnets are in (so no
//! zone of the group is left without capacity), passes `allow` and `deny`, and is in the bundled VPC CNI
//! table (eksodus fixes each node's max pods from it). The choice is sorted by name, so the same catalogue
//! gives the same answer.

use std::collections::BTreeSet;

use eksodus_core::spec::{InstanceSelectorSpec, MAX_SELECTED_TYPES};

use crate::Error;

/// What EC2 says about one instance type, as far as selection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceTypeInfo {
    /// Its name (`m5.large`).
    pub name: String,
    /// Default vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// GPUs, all makers together (0 for none).
    pub gpus: u32,
    /// Architectures it runs (`x86_64`, `arm64`, `i386`, ...).
    pub architectures: Vec<String>,
    /// How it is sold (`on-demand`, `spot`).
    pub usage_classes: Vec<String>,
    /// Zones it is offered in.
    pub zones: BTreeSet<String>,
}

/// A nodegroup's selector with what it buys and where.
#[derive(Debug, Clone, Copy)]
pub struct Wants<'a> {
    /// The selector.
    pub selector: &'a InstanceSelectorSpec,
    /// Spot capacity (else On-Demand).
    pub spot: bool,
    /// Zones the nodegroup's subnets are in; empty when not known (a VPC of the user's before it is read):
    /// then any zone offering it will do.
    pub zones: &'a [String],
}

/// The types chosen, and how many otherwise matching types were left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Chosen types, sorted.
    pub types: Vec<String>,
    /// Types with the resources asked for that some zone of the nodegroup does not offer.
    pub not_in_zones: usize,
    /// Types with the resources asked for that the VPC CNI table does not know.
    pub no_cni_data: usize,
}

/// Whether `t` has what the selector asks of a type itself: resources, architecture, name patterns and the
/// way it is sold (not where it is offered, nor the CNI table).
pub fn matches(w: &Wants<'_>, t: &InstanceTypeInfo) -> Result<bool, Error> {
    let s = w.selector;
    let (allow, deny) = patterns(s)?;
    Ok(matches_with(w, t, allow.as_ref(), deny.as_ref()))
}

fn matches_with(
    w: &Wants<'_>,
    t: &InstanceTypeInfo,
    allow: Option<&regex::Regex>,
    deny: Option<&regex::Regex>,
) -> bool {
    let s = w.selector;
    let class = if w.spot { "spot" } else { "on-demand" };
    s.vcpus.contains(t.vcpus)
        && s.memory_mib.contains(t.memory_mib)
        && s.gpus.contains(t.gpus)
        && t.architectures.contains(&s.architecture)
        && t.usage_classes.iter().any(|c| c == class)
        && allow.is_none_or(|r| r.is_match(&t.name))
        && !deny.is_some_and(|r| r.is_match(&t.name))
}

fn patterns(s: &InstanceSelectorSpec) -> Result<(Option<regex::Regex>, Option<regex::Regex>), Error> {
    let compile = |f: &str, p: &Option<String>| {
        p.as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| Error::Selection { field: f.to_string(), message: format!("not a regular expression: {e}") })
    };
    Ok((compile("instance_selector.allow", &s.allow)?, compile("instance_selector.deny", &s.deny)?))
}

/// Chooses the types of `catalogue` the selector wants. Fails naming the selector when none is left, or more
/// than [`MAX_SELECTED_TYPES`] (criteria that wide choose types nobody looked at).
pub fn select(w: &Wants<'_>, catalogue: &[InstanceTypeInfo]) -> Result<Selection, Error> {
    let (allow, deny) = patterns(w.selector)?;
    let mut out = Selection::default();
    let mut chosen = BTreeSet::new();
    for t in catalogue.iter().filter(|t| matches_with(w, t, allow.as_ref(), deny.as_ref())) {
        let in_zones =
            if w.zones.is_empty() { !t.zones.is_empty() } else { w.zones.iter().all(|z| t.zones.contains(z)) };
        if !in_zones {
            out.not_in_zones += 1;
        } else if crate::cni::limits(&t.name).is_err() {
            out.no_cni_data += 1;
        } else {
            chosen.insert(t.name.clone());
        }
    }
    out.types = chosen.into_iter().collect();
    if out.types.is_empty() {
        let mut why = Vec::new();
        if out.not_in_zones > 0 {
            why.push(format!("{} more match but are not offered in every zone of the nodegroup", out.not_in_zones));
        }
        if out.no_cni_data > 0 {
            why.push(format!("{} more match but have no VPC CNI limits to size max pods by", out.no_cni_data));
        }
        return Err(Error::Selection {
            field: "instance_selector".into(),
            message: format!(
                "no {} {} instance type has {} vCPUs, {} MiB of memory and {} GPUs{}",
                if w.spot { "Spot" } else { "On-Demand" },
                w.selector.architecture,
                w.selector.vcpus,
                w.selector.memory_mib,
                w.selector.gpus,
                if why.is_empty() { String::new() } else { format!(" ({})", why.join("; ")) }
            ),
        });
    }
    if out.types.len() > MAX_SELECTED_TYPES {
        return Err(Error::Selection {
            field: "instance_selector".into(),
            message: format!(
                "{} instance types match, more than {MAX_SELECTED_TYPES}: narrow vcpus, memory_mib or allow (the first are {})",
                out.types.len(),
                out.types[..5].join(", ")
            ),
        });
    }
    Ok(out)
}

/// Whether a nodegroup's types still satisfy its selector: every one is in `catalogue` and matches. A type
/// EC2 has since dropped from a zone does not count against it (the nodes run already).
pub fn still_satisfies(w: &Wants<'_>, catalogue: &[InstanceTypeInfo], types: &[String]) -> Result<bool, Error> {
    let (allow, deny) = patterns(w.selector)?;
    Ok(!types.is_empty()
        && types
            .iter()
            .all(|name| catalogue.iter().any(|t| t.name == *name && matches_with(w, t, allow.as_ref(), deny.as_ref()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eksodus_core::spec::CountRange;
    use proptest::prelude::*;

    /// A slice of what EC2 (through the emulator) reports for us-west-2: name, vCPUs, MiB, GPUs, architecture.
    const TYPES: &[(&str, u32, u32, u32, &str)] = &[
        ("c5.large", 2, 4096, 0, "x86_64"),
        ("c5a.large", 2, 4096, 0, "x86_64"),
        ("c5d.large", 2, 4096, 0, "x86_64"),
        ("c6i.large", 2, 4096, 0, "x86_64"),
        ("t3.medium", 2, 4096, 0, "x86_64"),
        ("t3a.medium", 2, 4096, 0, "x86_64"),
        ("m5.large", 2, 8192, 0, "x86_64"),
        ("m6i.large", 2, 8192, 0, "x86_64"),
        ("m6g.large", 2, 8192, 0, "arm64"),
        ("c6g.large", 2, 4096, 0, "arm64"),
        ("c6g.xlarge", 4, 8192, 0, "arm64"),
        ("m5.xlarge", 4, 16384, 0, "x86_64"),
        ("g4dn.xlarge", 4, 16384, 1, "x86_64"),
        ("g5.xlarge", 4, 16384, 1, "x86_64"),
        ("p3.8xlarge", 32, 249856, 4, "x86_64"),
        ("m5.2xlarge", 8, 32768, 0, "x86_64"),
        ("t2.medium", 2, 4096, 0, "x86_64"),
        ("x1.notatype", 2, 4096, 0, "x86_64"), // not in the CNI table
    ];

    fn catalogue() -> Vec<InstanceTypeInfo> {
        TYPES
            .iter()
            .map(|(n, v, m, g, a)| InstanceTypeInfo {
                name: n.to_string(),
                vcpus: *v,
                memory_mib: *m,
                gpus: *g,
                architectures: vec![a.to_string()],
                // the emulator sells everything both ways; t2 is On-Demand only here, to see the filter work
                usage_classes: if n.starts_with("t2") {
                    vec!["on-demand".into()]
                } else {
                    vec!["on-demand".into(), "spot".into()]
                },
                // c5d is not offered in the third zone
                zones: ["us-west-2a", "us-west-2b", "us-west-2c"]
                    .iter()
                    .filter(|z| !(n.starts_with("c5d") && z.ends_with('c')))
                    .map(|z| z.to_string())
                    .collect(),
            })
            .collect()
    }

    fn sel(yaml: &str) -> InstanceSelectorSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const ZONES: &[&str] = &["us-west-2a", "us-west-2b", "us-west-2c"];

    /// selector, spot, zones used, expected types, types missing in a zone, types without CNI data
    type Case<'a> = (&'a str, bool, usize, &'a [&'a str], usize, usize);

    #[test]
    fn chooses_by_resources_sale_zone_and_name_as_eksctl_examples_expect() {
        let zones: Vec<String> = ZONES.iter().map(|z| z.to_string()).collect();
        let cases: &[Case] = &[
            // eksctl's own example: 2 vCPUs and 4 GiB, x86 by default, no GPU types, sorted; in all three zones
            // c5d is left out, and counted
            (
                "{vcpus: 2, memory_mib: 4096}",
                false,
                3,
                &["c5.large", "c5a.large", "c6i.large", "t2.medium", "t3.medium", "t3a.medium"],
                1,
                1,
            ),
            // two zones that both offer c5d
            (
                "{vcpus: 2, memory_mib: 4096}",
                false,
                2,
                &["c5.large", "c5a.large", "c5d.large", "c6i.large", "t2.medium", "t3.medium", "t3a.medium"],
                0,
                1,
            ),
            // Spot: t2 is not sold that way here
            (
                "{vcpus: 2, memory_mib: 4096}",
                true,
                2,
                &["c5.large", "c5a.large", "c5d.large", "c6i.large", "t3.medium", "t3a.medium"],
                0,
                1,
            ),
            ("{vcpus: 2, memory_mib: {min: 8192}, architecture: arm64}", false, 3, &["m6g.large"], 0, 0),
            ("{vcpus: {min: 4}, gpus: {min: 1}}", false, 3, &["g4dn.xlarge", "g5.xlarge", "p3.8xlarge"], 0, 0),
            ("{gpus: {min: 1}, allow: '^g', deny: 'g5'}", false, 3, &["g4dn.xlarge"], 0, 0),
            (
                "{vcpus: {min: 2, max: 4}, memory_mib: {max: 8192}, deny: '^(c5|t)'}",
                false,
                3,
                &["c6i.large", "m5.large", "m6i.large"],
                0,
                1,
            ),
        ];
        for (i, (yaml, spot, nzones, want, not_in_zones, no_cni)) in cases.iter().enumerate() {
            let s = sel(yaml);
            let z: Vec<String> = match nzones {
                3 => zones.clone(),
                n => zones[..*n].to_vec(),
            };
            let got = select(&Wants { selector: &s, spot: *spot, zones: &z }, &catalogue()).unwrap();
            assert_eq!(got.types, *want, "case {i}: {yaml}");
            assert_eq!((got.not_in_zones, got.no_cni_data), (*not_in_zones, *no_cni), "case {i}: {yaml}");
        }
    }

    #[test]
    fn nothing_or_too_much_is_an_error_that_says_why() {
        let z: Vec<String> = ZONES.iter().map(|z| z.to_string()).collect();
        let s = sel("{vcpus: 3}");
        let e = select(&Wants { selector: &s, spot: false, zones: &z }, &catalogue()).unwrap_err().to_string();
        assert_eq!(e, "instance_selector: no On-Demand x86_64 instance type has 3 vCPUs, any MiB of memory and 0 GPUs");
        let s = sel("{vcpus: 2, memory_mib: 4096, allow: c5d}");
        let e = select(&Wants { selector: &s, spot: false, zones: &z }, &catalogue()).unwrap_err().to_string();
        assert!(e.contains("1 more match but are not offered in every zone"), "{e}");
        let s = sel("{allow: notatype}");
        let e = select(&Wants { selector: &s, spot: false, zones: &z }, &catalogue()).unwrap_err().to_string();
        assert!(e.contains("no VPC CNI limits"), "{e}");
        let wide: Vec<InstanceTypeInfo> = crate::cni::all()
            .take(MAX_SELECTED_TYPES + 1)
            .map(|l| InstanceTypeInfo {
                name: l.instance_type.clone(),
                vcpus: 2,
                memory_mib: 4096,
                gpus: 0,
                architectures: vec!["x86_64".into()],
                usage_classes: vec!["on-demand".into()],
                zones: z.iter().cloned().collect(),
            })
            .collect();
        let s = InstanceSelectorSpec::default();
        let e = select(&Wants { selector: &s, spot: false, zones: &z }, &wide).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{} instance types match, more than {MAX_SELECTED_TYPES}", MAX_SELECTED_TYPES + 1)),
            "{e}"
        );
        assert_eq!(
            select(&Wants { selector: &s, spot: false, zones: &z }, &wide[..MAX_SELECTED_TYPES]).unwrap().types.len(),
            MAX_SELECTED_TYPES
        );
    }

    #[test]
    fn types_running_keep_satisfying_until_the_selector_changes() {
        let z: Vec<String> = ZONES.iter().map(|z| z.to_string()).collect();
        let s = sel("{vcpus: 2, memory_mib: 4096}");
        let w = Wants { selector: &s, spot: false, zones: &z };
        let running = ["c5a.large".to_string(), "t3.medium".to_string()];
        assert!(still_satisfies(&w, &catalogue(), &running).unwrap());
        // c5d is gone from a zone since: its nodes run, it still counts
        assert!(still_satisfies(&w, &catalogue(), &["c5d.large".to_string()]).unwrap());
        let s8 = sel("{vcpus: 2, memory_mib: 8192}");
        assert!(!still_satisfies(&Wants { selector: &s8, ..w }, &catalogue(), &running).unwrap());
        assert!(!still_satisfies(&w, &catalogue(), &["m9.unknown".to_string()]).unwrap());
        assert!(!still_satisfies(&w, &catalogue(), &[]).unwrap());
    }

    fn range() -> impl Strategy<Value = CountRange> {
        (proptest::option::of(0u32..40), proptest::option::of(0u32..40)).prop_map(|(min, max)| CountRange { min, max })
    }

    fn scaled(r: CountRange, by: u32) -> CountRange {
        CountRange { min: r.min.map(|m| m * by), max: r.max.map(|m| m * by) }
    }

    proptest! {
        /// Every chosen type matches, every matching type offered in the zones and known to the CNI table is
        /// chosen, the answer is sorted and duplicate-free, and narrowing a range never adds a type.
        #[test]
        fn selection_is_exactly_the_matching_types(vcpus in range(), mem in range(), gpus in range(), spot: bool, arm: bool, nzones in 0usize..4, narrow in 0u32..4) {
            let s = InstanceSelectorSpec { vcpus, memory_mib: scaled(mem, 2048), gpus, architecture: if arm { "arm64".into() } else { "x86_64".into() }, allow: None, deny: None };
            let z: Vec<String> = ZONES[..nzones].iter().map(|z| z.to_string()).collect();
            let w = Wants { selector: &s, spot, zones: &z };
            let cat = catalogue();
            let want: Vec<String> = {
                let mut v: Vec<String> = cat.iter()
                    .filter(|t| matches(&w, t).unwrap() && z.iter().all(|q| t.zones.contains(q)) && crate::cni::limits(&t.name).is_ok())
                    .map(|t| t.name.clone()).collect();
                v.sort();
                v
            };
            match select(&w, &cat) {
                Ok(got) => {
                    prop_assert_eq!(&got.types, &want);
                    prop_assert!(still_satisfies(&w, &cat, &got.types).unwrap());
                    let mut narrower = s.clone();
                    narrower.vcpus.min = Some(narrower.vcpus.min.unwrap_or(0) + narrow);
                    if let Ok(n) = select(&Wants { selector: &narrower, ..w }, &cat) {
                        prop_assert!(n.types.iter().all(|t| got.types.contains(t)));
                    }
                }
                Err(_) => prop_assert!(want.is_empty() || want.len() > MAX_SELECTED_TYPES),
            }
        }
    }
}
