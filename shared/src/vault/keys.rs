//! Where a service's data keys come from, behind one trait: a key file, or the same
//! document in an environment variable; a KMS would be a third provider.
//!
//! The document is TOML:
//!
//! ```toml
//! # base64 of 32 random bytes each
//! index_key = "..."        # the keyed index of ID numbers; never rotated in place
//! [[data_keys]]
//! version = 1
//! key = "..."
//! [[data_keys]]            # a new version: new values are sealed under the highest
//! version = 2
//! key = "..."
//! ```

use std::{collections::BTreeMap, path::PathBuf};

use aes_gcm::{Aes256Gcm, KeyInit as _, aead::OsRng};
use base64::Engine as _;
use serde::Deserialize;

use super::KEY_BYTES;

/// Most data-key versions one document holds.
pub const MAX_KEY_VERSIONS: usize = 64;
/// Longest key document read.
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024;

/// Keys that cannot be used. The message names what is wrong, never a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data keys: {0}")]
pub struct KeyError(pub String);

/// One service's keys, as a provider gives them.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Data keys by version.
    pub data_keys: BTreeMap<u32, [u8; KEY_BYTES]>,
    /// The key of the ID-number index.
    pub index_key: [u8; KEY_BYTES],
}

/// Key bytes do not outlive their use: the ciphers keep their own copies (wiped on drop
/// too, aes-gcm's `zeroize`), and these are wiped when dropped.
impl Drop for KeyMaterial {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for key in self.data_keys.values_mut() {
            key.zeroize();
        }
        self.index_key.zeroize();
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("versions", &self.data_keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    index_key: String,
    data_keys: Vec<DataKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataKey {
    version: u32,
    key: String,
}

impl KeyMaterial {
    /// Parses a key document.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let document: Document =
            toml::from_str(text).map_err(|e| KeyError(format!("not a key document: {e}")))?;
        if document.data_keys.is_empty() || document.data_keys.len() > MAX_KEY_VERSIONS {
            return Err(KeyError(format!(
                "1 to {MAX_KEY_VERSIONS} data keys are required"
            )));
        }
        let mut data_keys = BTreeMap::new();
        for key in &document.data_keys {
            if key.version == 0 {
                return Err(KeyError("key versions start at 1".to_owned()));
            }
            let bytes = decode(&key.key, &format!("data key version {}", key.version))?;
            if data_keys.insert(key.version, bytes).is_some() {
                return Err(KeyError(format!("key version {} given twice", key.version)));
            }
        }
        Ok(Self {
            data_keys,
            index_key: decode(&document.index_key, "the index key")?,
        })
    }

    /// The version new values are sealed under: the highest.
    pub fn active_version(&self) -> u32 {
        self.data_keys.keys().next_back().copied().unwrap_or(1)
    }

    /// Fresh random keys: version 1 and an index key.
    pub fn generate() -> Self {
        Self {
            data_keys: BTreeMap::from([(1, random_key())]),
            index_key: random_key(),
        }
    }

    /// The same keys with a new random version above the highest: new values use it.
    pub fn with_new_version(&self) -> Self {
        let mut next = self.clone();
        next.data_keys
            .insert(self.active_version() + 1, random_key());
        next
    }

    /// The same keys without `version`.
    pub fn without_version(&self, version: u32) -> Self {
        let mut next = self.clone();
        next.data_keys.remove(&version);
        next
    }

    /// The key document of these keys.
    pub fn to_toml(&self) -> String {
        let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
        let mut text = format!(
            "# gongji data keys: keep secret. New values are sealed under the highest version;\n\
             # remove a version only after re-encryption has retired it.\nindex_key = \"{}\"\n",
            b64(&self.index_key)
        );
        for (version, key) in &self.data_keys {
            text.push_str(&format!(
                "\n[[data_keys]]\nversion = {version}\nkey = \"{}\"\n",
                b64(key)
            ));
        }
        text
    }
}

fn random_key() -> [u8; KEY_BYTES] {
    Aes256Gcm::generate_key(&mut OsRng).into()
}

fn decode(text: &str, what: &str) -> Result<[u8; KEY_BYTES], KeyError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; KEY_BYTES]>::try_from(bytes).ok())
        .ok_or_else(|| KeyError(format!("{what} is not base64 of {KEY_BYTES} bytes")))
}

/// Gives a service its keys.
pub trait KeyProvider: Send + Sync {
    /// Loads the keys; called once at start-up.
    fn load(&self) -> Result<KeyMaterial, KeyError>;
}

/// A key document in a file, readable by the service's user only.
#[derive(Debug, Clone)]
pub struct FileKeys(pub PathBuf);

impl KeyProvider for FileKeys {
    fn load(&self) -> Result<KeyMaterial, KeyError> {
        let path = &self.0;
        let cannot = |e: std::io::Error| KeyError(format!("cannot read {}: {e}", path.display()));
        let meta = std::fs::metadata(path).map_err(cannot)?;
        if meta.len() > MAX_DOCUMENT_BYTES {
            return Err(KeyError(format!("{} is too large", path.display())));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the key file is readable by other users");
            }
        }
        let text = std::fs::read_to_string(path).map_err(cannot)?;
        KeyMaterial::parse(&text).map_err(|e| KeyError(format!("{}: {}", path.display(), e.0)))
    }
}

/// A key document in an environment variable.
#[derive(Debug, Clone)]
pub struct EnvKeys(pub String);

impl KeyProvider for EnvKeys {
    fn load(&self) -> Result<KeyMaterial, KeyError> {
        let text = std::env::var(&self.0)
            .map_err(|_| KeyError(format!("{} is not set, or not UTF-8", self.0)))?;
        KeyMaterial::parse(&text).map_err(|e| KeyError(format!("{}: {}", self.0, e.0)))
    }
}

/// Writes fresh development keys to `path` unless a key file is there already (its keys are
/// kept, so data written before stays readable), readable by the owner only.
pub fn ensure_dev_keys(path: &std::path::Path) -> Result<(), KeyError> {
    if path.exists() {
        return Ok(());
    }
    write_keys(path, &KeyMaterial::generate())
}

/// Writes a key document to `path`, readable by the owner only.
pub fn write_keys(path: &std::path::Path, keys: &KeyMaterial) -> Result<(), KeyError> {
    let cannot = |e: std::io::Error| KeyError(format!("cannot write {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(cannot)?;
    }
    std::fs::write(path, keys.to_toml()).map_err(cannot)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(cannot)?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A key document with `versions`, every key byte `seed` plus its version.
    pub(in crate::vault) fn toml_of(versions: &[u32], seed: u8) -> String {
        let material = KeyMaterial {
            data_keys: versions
                .iter()
                .map(|v| (*v, [seed.wrapping_add(*v as u8); KEY_BYTES]))
                .collect(),
            index_key: [seed; KEY_BYTES],
        };
        material.to_toml()
    }

    #[test]
    fn a_document_round_trips_and_the_highest_version_is_active() {
        let generated = KeyMaterial::generate().with_new_version();
        let parsed = KeyMaterial::parse(&generated.to_toml()).unwrap();
        assert_eq!(parsed, generated);
        assert_eq!(parsed.active_version(), 2);
        assert_eq!(parsed.without_version(2).active_version(), 1);
    }

    #[test]
    fn bad_documents_are_refused_without_echoing_keys() {
        for (text, says) in [
            ("index_key = \"AAAA\"\ndata_keys = []", "1 to 64"),
            ("nonsense", "not a key document"),
            (
                "index_key = \"c2VjcmV0\"\n[[data_keys]]\nversion = 1\nkey = \"c2VjcmV0\"",
                "base64 of 32 bytes",
            ),
        ] {
            let error = KeyMaterial::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
            assert!(!error.contains("c2VjcmV0"), "{error}");
        }
        let twice = format!(
            "{}\n[[data_keys]]\nversion = 1\nkey = \"{}\"\n",
            toml_of(&[1], 1),
            base64::engine::general_purpose::STANDARD.encode([0u8; 32])
        );
        assert!(KeyMaterial::parse(&twice).unwrap_err().0.contains("twice"));
    }

    #[test]
    fn a_file_provider_reads_what_dev_keys_wrote_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/payment.toml");
        ensure_dev_keys(&path).unwrap();
        let first = FileKeys(path.clone()).load().unwrap();
        ensure_dev_keys(&path).unwrap();
        assert_eq!(FileKeys(path.clone()).load().unwrap(), first, "kept");
        let missing = FileKeys(dir.path().join("none.toml")).load().unwrap_err();
        assert!(missing.0.contains("cannot read"), "{missing}");
    }
}
