//! Values the API server encrypted at rest, decrypted with the keys of its `EncryptionConfiguration`
//! (`apiserver.config.k8s.io/v1`): `aescbc` (AES-CBC, PKCS#7 padding, the 16-byte IV first), `aesgcm` (AES-GCM,
//! the 12-byte nonce first, the etcd key as authenticated data), `secretbox` (XSalsa20-Poly1305, the 24-byte
//! nonce first). Values are `k8s:enc:<provider>:v1:<key name>:` followed by those bytes. KMS providers keep
//! their keys in the KMS and cannot be used offline.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use serde::Deserialize;

/// The keys of an EncryptionConfiguration, by provider and key name.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    keys: BTreeMap<(String, String), Vec<u8>>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    #[serde(default)]
    providers: Vec<BTreeMap<String, serde_json::Value>>,
}

impl Keys {
    /// Reads an EncryptionConfiguration (YAML or JSON); errors name the entry.
    pub fn from_config(text: &str) -> Result<Keys, String> {
        let c: Config = serde_saphyr::from_str(text).map_err(|e| format!("EncryptionConfiguration: {e}"))?;
        let mut out = Keys::default();
        for (i, r) in c.resources.iter().enumerate() {
            for (j, p) in r.providers.iter().enumerate() {
                for (provider, v) in p {
                    if !matches!(provider.as_str(), "aescbc" | "aesgcm" | "secretbox") {
                        continue; // identity, kms: nothing to hold offline
                    }
                    let keys = v.get("keys").and_then(|k| k.as_array()).cloned().unwrap_or_default();
                    for (n, k) in keys.iter().enumerate() {
                        let at = format!("resources[{i}].providers[{j}].{provider}.keys[{n}]");
                        let name = k.get("name").and_then(|x| x.as_str()).ok_or(format!("{at}.name is missing"))?;
                        let secret =
                            k.get("secret").and_then(|x| x.as_str()).ok_or(format!("{at}.secret is missing"))?;
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(secret.trim())
                            .map_err(|e| format!("{at}.secret is not base64: {e}"))?;
                        let ok = match provider.as_str() {
                            "secretbox" => bytes.len() == 32,
                            _ => matches!(bytes.len(), 16 | 24 | 32),
                        };
                        if !ok {
                            return Err(format!("{at}.secret is {} bytes, not a {provider} key length", bytes.len()));
                        }
                        out.keys.insert((provider.clone(), name.to_string()), bytes);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Adds one key (tests, tools).
    pub fn insert(&mut self, provider: &str, name: &str, key: Vec<u8>) {
        self.keys.insert((provider.into(), name.into()), key);
    }

    /// Decrypts a value's ciphertext (what follows `k8s:enc:<provider>:v1:<key name>:`). `etcd_key` is the
    /// authenticated data of aesgcm.
    pub fn decrypt(&self, provider: &str, key_name: &str, data: &[u8], etcd_key: &[u8]) -> Result<Vec<u8>, String> {
        let key = self
            .keys
            .get(&(provider.to_string(), key_name.to_string()))
            .ok_or_else(|| format!("no {provider} key named `{key_name}` in the EncryptionConfiguration"))?;
        match provider {
            "aescbc" => aescbc_decrypt(key, data),
            "aesgcm" => {
                if data.len() < 12 + 16 {
                    return Err("aesgcm value too short".into());
                }
                let (nonce, ct) = data.split_at(12);
                let payload = Payload { msg: ct, aad: etcd_key };
                let res = match key.len() {
                    16 => aes_gcm::Aes128Gcm::new_from_slice(key)
                        .map_err(|e| e.to_string())?
                        .decrypt(nonce.into(), payload),
                    32 => aes_gcm::Aes256Gcm::new_from_slice(key)
                        .map_err(|e| e.to_string())?
                        .decrypt(nonce.into(), payload),
                    n => return Err(format!("aesgcm with a {n}-byte key is not supported")),
                };
                res.map_err(|_| "aesgcm: authentication failed (wrong key, or not this etcd key's value)".into())
            }
            "secretbox" => {
                use crypto_secretbox::{aead::Aead as _, KeyInit as _, XSalsa20Poly1305};
                if data.len() < 24 + 16 {
                    return Err("secretbox value too short".into());
                }
                let (nonce, ct) = data.split_at(24);
                let cipher = XSalsa20Poly1305::new_from_slice(key).map_err(|e| e.to_string())?;
                cipher.decrypt(nonce.into(), ct).map_err(|_| "secretbox: authentication failed (wrong key)".into())
            }
            other => Err(format!("provider {other} cannot be decrypted offline")),
        }
    }
}

fn aescbc_decrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    if data.len() < 32 || !data.len().is_multiple_of(16) {
        return Err("aescbc value is not an IV and whole blocks".into());
    }
    let (iv, ct) = data.split_at(16);
    let bad = |_| "aescbc: bad padding (wrong key)".to_string();
    match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded_vec_mut::<Pkcs7>(ct)
            .map_err(bad),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded_vec_mut::<Pkcs7>(ct)
            .map_err(bad),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded_vec_mut::<Pkcs7>(ct)
            .map_err(bad),
        n => Err(format!("aescbc with a {n}-byte key")),
    }
}

/// Encrypts as the API server would (tests and tools): returns the whole stored value.
pub fn encrypt(
    provider: &str,
    key_name: &str,
    key: &[u8],
    nonce: &[u8],
    plain: &[u8],
    etcd_key: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = format!("k8s:enc:{provider}:v1:{key_name}:").into_bytes();
    match provider {
        "aescbc" => {
            use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
            let ct = match key.len() {
                16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, nonce)
                    .map_err(|e| e.to_string())?
                    .encrypt_padded_vec_mut::<Pkcs7>(plain),
                32 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, nonce)
                    .map_err(|e| e.to_string())?
                    .encrypt_padded_vec_mut::<Pkcs7>(plain),
                n => return Err(format!("aescbc with a {n}-byte key")),
            };
            out.extend_from_slice(nonce);
            out.extend_from_slice(&ct);
        }
        "aesgcm" => {
            let payload = Payload { msg: plain, aad: etcd_key };
            let ct = aes_gcm::Aes256Gcm::new_from_slice(key)
                .map_err(|e| e.to_string())?
                .encrypt(nonce.into(), payload)
                .map_err(|e| e.to_string())?;
            out.extend_from_slice(nonce);
            out.extend_from_slice(&ct);
        }
        "secretbox" => {
            use crypto_secretbox::{aead::Aead as _, KeyInit as _, XSalsa20Poly1305};
            let ct = XSalsa20Poly1305::new_from_slice(key)
                .map_err(|e| e.to_string())?
                .encrypt(nonce.into(), plain)
                .map_err(|e| e.to_string())?;
            out.extend_from_slice(nonce);
            out.extend_from_slice(&ct);
        }
        other => return Err(format!("cannot encrypt with {other}")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{classify, Stored};

    const CONFIG: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - {name: gcm1, secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
      - aescbc:
          keys:
            - {name: cbc1, secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
      - secretbox:
          keys:
            - {name: box1, secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
      - identity: {}
"#;

    #[test]
    fn every_provider_round_trips_with_known_keys() {
        let keys = Keys::from_config(CONFIG).unwrap();
        let key: Vec<u8> = (0u8..32).collect();
        let plain = b"k8s\x00 a secret object";
        let etcd_key = b"/registry/secrets/shop/db";
        for (provider, name, nonce) in
            [("aescbc", "cbc1", vec![7u8; 16]), ("aesgcm", "gcm1", vec![9u8; 12]), ("secretbox", "box1", vec![3u8; 24])]
        {
            let stored = encrypt(provider, name, &key, &nonce, plain, etcd_key).unwrap();
            let Stored::Encrypted { provider: p, key_name, ciphertext, .. } = classify(&stored).unwrap() else {
                panic!("{provider}")
            };
            assert_eq!((p.as_str(), key_name.as_str()), (provider, name));
            assert_eq!(keys.decrypt(&p, &key_name, ciphertext, etcd_key).unwrap(), plain, "{provider}");
            // a wrong key, or (aesgcm) another etcd key, is refused, never garbage
            let mut wrong = Keys::default();
            wrong.insert(provider, name, vec![1u8; 32]);
            assert!(wrong.decrypt(&p, &key_name, ciphertext, etcd_key).is_err(), "{provider}");
        }
        let stored = encrypt("aesgcm", "gcm1", &key, &[9u8; 12], plain, etcd_key).unwrap();
        let Stored::Encrypted { ciphertext, .. } = classify(&stored).unwrap() else { panic!() };
        assert!(
            keys.decrypt("aesgcm", "gcm1", ciphertext, b"/registry/secrets/other/x").is_err(),
            "aesgcm binds the etcd key"
        );
        assert!(keys
            .decrypt("aescbc", "nope", ciphertext, etcd_key)
            .unwrap_err()
            .contains("no aescbc key named `nope`"));
    }

    #[test]
    fn bad_configs_name_the_entry() {
        let e = Keys::from_config(
            "resources:\n- providers:\n  - aescbc:\n      keys:\n      - {name: k, secret: 'AAAA'}\n",
        )
        .unwrap_err();
        assert!(e.contains("resources[0].providers[0].aescbc.keys[0].secret is 3 bytes"), "{e}");
    }
}
