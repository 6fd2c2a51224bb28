//! The EC2 key pairs eksodus imports for nodegroups' SSH from a public key (kind `ec2-key-pair`, key
//! `kp/<nodegroup>`).
//!
//! Found by ownership tags. The name carries a digest of the key (`<environment>-<nodegroup>-<digest>`), so a
//! new key is a new pair with a new name, which EKS's remote access can only take by replacing the nodegroup:
//! new nodes with the new key, never a pair whose material changed under running nodes. An import whose answer
//! was lost fails on the retry as a duplicate name, and the pair is adopted when it carries this environment's
//! tags.

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use super::template::{owned_filters, owned_tags};
use super::*;

/// Key of a nodegroup's imported key pair.
pub fn key_pair_key(nodegroup: &str) -> String {
    format!("kp/{nodegroup}")
}

/// The key as EC2 compares it: its type and base64 body, without the comment.
pub fn normalized(public_key: &str) -> String {
    public_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The name of the pair eksodus imports for `public_key` (at most 255 characters, as EC2 allows).
pub fn key_pair_name(env: &str, nodegroup: &str, public_key: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(normalized(public_key).as_bytes());
    let hex: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let mut base = format!("{env}-{nodegroup}");
    base.truncate(245);
    format!("{base}-{hex}")
}

/// What a key pair eksodus imports holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairProps {
    /// Its name ([`key_pair_name`]).
    pub name: String,
    /// The public key as EC2 compares it (type and base64 body, no comment); set at import only (the name
    /// follows it).
    pub public_key: String,
}

impl Eks {
    /// The key pairs this environment imported.
    pub(super) async fn discover_key_pairs(&self) -> Result<Vec<Observed>, StepError> {
        let r = retry(&self.reads, || async {
            self.ec2_calls
                .read_step("DescribeKeyPairs", || {
                    self.ec2
                        .describe_key_pairs()
                        .set_filters(Some(owned_filters(&self.env).to_vec()))
                        .include_public_key(true)
                        .send()
                })
                .await
        })
        .await?;
        Ok(r.key_pairs()
            .iter()
            .filter_map(|k| {
                let tg = owned_tags(&self.env, k.tags())?;
                let name = k.key_name()?.to_string();
                Some(Observed {
                    key: tg.get(tags::RESOURCE)?.clone(),
                    kind: "ec2-key-pair".into(),
                    physical_id: name.clone(),
                    props: to_props(&KeyPairProps {
                        name,
                        public_key: k.public_key().map(normalized).unwrap_or_default(),
                    }),
                    depends_on: vec![],
                    delete_cost: 1,
                })
            })
            .collect())
    }

    pub(super) async fn create_key_pair(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let s = &op.step;
        let w: KeyPairProps =
            from_props(&s.key, &s.desired.clone().unwrap_or_default()).map_err(StepError::permanent)?;
        let own: Vec<Tag> =
            self.owner_tags(&s.key).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let r = self
            .ec2_calls
            .create(|| {
                self.ec2
                    .import_key_pair()
                    .key_name(&w.name)
                    .public_key_material(Blob::new(w.public_key.as_bytes()))
                    .tag_specifications(
                        TagSpecification::builder()
                            .resource_type(ResourceType::KeyPair)
                            .set_tags(Some(own.clone()))
                            .build(),
                    )
                    .send()
            })
            .await;
        match r {
            Ok(_) => Ok(Some(w.name)),
            // the name is unique: an earlier attempt imported it (adopted when it is ours), or someone else did
            Err(e) if error_code(&e) == Some("InvalidKeyPair.Duplicate") => {
                let mine = self.discover_key_pairs().await?.into_iter().any(|o| o.physical_id == w.name);
                if mine {
                    Ok(Some(w.name))
                } else {
                    Err(StepError::permanent(format!(
                        "key pair {} exists and is not owned by environment {}",
                        w.name, self.env
                    )))
                }
            }
            Err(e) => Err(step_error(format!("ImportKeyPair {}", w.name), e)),
        }
    }

    pub(super) async fn delete_key_pair(&self, op: &Operation) -> Result<Option<String>, StepError> {
        let name = op.step.physical_id.clone().unwrap_or_default();
        // EC2 answers success for a pair already gone
        match self.ec2_calls.read(|| self.ec2.delete_key_pair().key_name(&name).send()).await {
            Ok(_) => Ok(Some(name)),
            Err(e) if error_code(&e) == Some("InvalidKeyPair.NotFound") => Ok(Some(name)),
            Err(e) => Err(step_error(format!("DeleteKeyPair {name}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_key_not_its_comment() {
        let a = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx0 alice@laptop";
        let same = "ssh-ed25519   AAAAC3NzaC1lZDI1NTE5AAAAIKx0\n";
        let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx1 alice@laptop";
        assert_eq!(normalized(a), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx0");
        assert_eq!(key_pair_name("shop", "ops", a), key_pair_name("shop", "ops", same));
        assert_ne!(key_pair_name("shop", "ops", a), key_pair_name("shop", "ops", other));
        assert!(key_pair_name("shop", "ops", a).starts_with("shop-ops-"));
        assert!(key_pair_name(&"e".repeat(100), &"n".repeat(200), a).len() <= 255);
    }
}
