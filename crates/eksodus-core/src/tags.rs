//! Ownership tags: how eksodus finds what it owns without a state file.
//!
//! Every resource eksodus creates carries, from the create call itself (tag-on-create, never a separate
//! CreateTags), three tags: the environment, the component and the logical resource key. Discovery filters on
//! the environment and component; the key maps a discovered resource back to the spec entry it realises.

use std::collections::BTreeMap;

/// Prefix of every eksodus tag.
pub const PREFIX: &str = "eksodus.io/";
/// Tag naming the environment (`EnvironmentSpec::name`).
pub const ENVIRONMENT: &str = "eksodus.io/environment";
/// Tag naming the component (`network`, `access`, `cluster`, ...).
pub const COMPONENT: &str = "eksodus.io/component";
/// Tag holding the logical resource key within the component, such as `subnet/private/us-east-1a`.
pub const RESOURCE: &str = "eksodus.io/resource";
/// The `Name` tag AWS consoles show.
pub const NAME: &str = "Name";
/// How many of the 50 tags an EC2 resource allows eksodus keeps for itself (ownership, `Name`, Kubernetes roles).
pub const RESERVED_TAG_BUDGET: usize = 8;

/// The ownership tags of one resource, plus the user's tags and a `Name`.
pub fn ownership(
    environment: &str,
    component: &str,
    key: &str,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut t = user.clone();
    t.insert(NAME.to_string(), format!("{environment}/{key}"));
    t.insert(ENVIRONMENT.to_string(), environment.to_string());
    t.insert(COMPONENT.to_string(), component.to_string());
    t.insert(RESOURCE.to_string(), key.to_string());
    t
}

/// Whether a tag set marks a resource as owned by `environment`'s `component`.
pub fn is_owned(tags: &BTreeMap<String, String>, environment: &str, component: &str) -> bool {
    tags.get(ENVIRONMENT).map(String::as_str) == Some(environment)
        && tags.get(COMPONENT).map(String::as_str) == Some(component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_tags_win_over_user_tags() {
        let mut user = BTreeMap::new();
        user.insert("team".into(), "platform".into());
        user.insert(NAME.into(), "mine".into());
        let t = ownership("prod", "network", "vpc", &user);
        assert_eq!(t["team"], "platform");
        assert_eq!(t[NAME], "prod/vpc");
        assert!(is_owned(&t, "prod", "network"));
        assert!(!is_owned(&t, "prod", "access"));
        assert!(!is_owned(&t, "staging", "network"));
    }
}
