//! Personal data at rest: ID numbers and names are stored only sealed (AES-256-GCM), and
//! looked up through a keyed index (HMAC-SHA256 of the ID number under a key of its own).
//!
//! - [`Vault::seal`] and [`Vault::open`]: a sealed value is `v<version>:<base64 of nonce and
//!   ciphertext>`, so each names the key that sealed it; new values use the newest key, and
//!   values under any key the vault holds stay readable.
//! - [`Vault::index`]: the column an equality lookup compares. An ID number has a small
//!   input space (region, birth date, sequence: a few billion values), so an unkeyed hash
//!   could be reversed by trying them all; without the index key it cannot.
//! - [`keys`]: where keys come from (a file, the environment; a KMS later), and the check
//!   values that make a missing or wrong key stop start-up.
//!
//! No I/O here but the key provider's; the stores hold a `Vault` and call it at their edge.

pub mod keys;

use std::{collections::BTreeMap, fmt, sync::Arc};

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng},
};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::{IdNumber, PersonName};

pub use keys::{KeyError, KeyMaterial, KeyProvider};

/// Bytes of a key: AES-256 and the HMAC key alike.
pub const KEY_BYTES: usize = 32;
/// Bytes of a GCM nonce, random per value.
const NONCE_BYTES: usize = 12;
/// Bytes of the index kept: 128 bits, so that two ID numbers never share one in practice.
const INDEX_BYTES: usize = 16;
/// Longest sealed value opened: a bound on the work of one decode.
const MAX_SEALED_CHARS: usize = 64 * 1024;
/// Associated data of every sealed value: a value sealed by another system under the same
/// key does not open here.
const AAD: &[u8] = b"gongji/v1";

/// A sealed value that does not open: a key that is missing, or wrong, or a damaged value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed value")]
    Malformed,
    #[error("sealed under key version {0}, which this service does not hold")]
    UnknownKey(u32),
    #[error("does not open under key version {0}: a wrong key, or a damaged value")]
    Tampered(u32),
}

/// The keys of one service, ready to use. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    ciphers: BTreeMap<u32, Aes256Gcm>,
    active: u32,
    index: Hmac<Sha256>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("versions", &self.versions())
            .field("active", &self.inner.active)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault of `material`: new values are sealed under its newest version.
    pub fn new(material: &KeyMaterial) -> Self {
        let ciphers = material
            .data_keys
            .iter()
            .map(|(version, key)| (*version, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))))
            .collect();
        let index = <Hmac<Sha256> as Mac>::new_from_slice(&material.index_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        Self {
            inner: Arc::new(Inner {
                ciphers,
                active: material.active_version(),
                index,
            }),
        }
    }

    /// A vault of fresh random keys: for tests, whose databases live no longer than them.
    pub fn generate() -> Self {
        Self::new(&KeyMaterial::generate())
    }

    /// The version new values are sealed under.
    pub fn active_version(&self) -> u32 {
        self.inner.active
    }

    /// The versions this vault opens, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.inner.ciphers.keys().copied().collect()
    }

    /// `plain` sealed under the newest key.
    pub fn seal(&self, plain: &str) -> String {
        self.seal_under(self.inner.active, plain.as_bytes())
    }

    /// `plain` sealed under key `version` (which the vault holds).
    fn seal_under(&self, version: u32, plain: &[u8]) -> String {
        let cipher = &self.inner.ciphers[&version];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                aes_gcm::aead::Payload {
                    msg: plain,
                    aad: AAD,
                },
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any message under 64 GiB"));
        let mut bytes = Vec::with_capacity(NONCE_BYTES + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!(
            "v{version}:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
        )
    }

    /// The key version a sealed value names, if it is one.
    pub fn version_of(sealed: &str) -> Option<u32> {
        let (version, _) = sealed.strip_prefix('v')?.split_once(':')?;
        version.parse().ok()
    }

    /// The plain bytes of a sealed value.
    pub fn open_bytes(&self, sealed: &str) -> Result<Vec<u8>, OpenError> {
        if sealed.len() > MAX_SEALED_CHARS {
            return Err(OpenError::Malformed);
        }
        let version = Self::version_of(sealed).ok_or(OpenError::Malformed)?;
        let body = &sealed[sealed.find(':').ok_or(OpenError::Malformed)? + 1..];
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| OpenError::Malformed)?;
        if bytes.len() < NONCE_BYTES {
            return Err(OpenError::Malformed);
        }
        let cipher = self
            .inner
            .ciphers
            .get(&version)
            .ok_or(OpenError::UnknownKey(version))?;
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                aes_gcm::aead::Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| OpenError::Tampered(version))
    }

    /// The plain text of a sealed value.
    pub fn open(&self, sealed: &str) -> Result<String, OpenError> {
        String::from_utf8(self.open_bytes(sealed)?).map_err(|_| OpenError::Malformed)
    }

    /// Bytes (a stored response) sealed under the newest key.
    pub fn seal_bytes(&self, plain: &[u8]) -> String {
        self.seal_under(self.inner.active, plain)
    }

    /// A sealed value sealed again under the newest key, or `None` if it already is.
    pub fn reseal(&self, sealed: &str) -> Result<Option<String>, OpenError> {
        if Self::version_of(sealed) == Some(self.inner.active) {
            return Ok(None);
        }
        let plain = self.open_bytes(sealed)?;
        Ok(Some(self.seal_under(self.inner.active, &plain)))
    }

    /// `value` sealed, unless it is sealed already (a column an earlier version wrote in
    /// plain text, being migrated).
    pub fn seal_plain(&self, value: &str) -> String {
        if Self::version_of(value).is_some() {
            value.to_owned()
        } else {
            self.seal(value)
        }
    }

    /// An ID number sealed.
    pub fn seal_id(&self, id: &IdNumber) -> String {
        self.seal(id.as_str())
    }

    /// A name sealed.
    pub fn seal_name(&self, name: &PersonName) -> String {
        self.seal(name.as_str())
    }

    /// The keyed index of an ID number: what stored rows are looked up by.
    pub fn index(&self, id: &IdNumber) -> String {
        self.keyed(id.as_str().as_bytes())
    }

    /// The keyed index of an ID number still held as text (an old plaintext row).
    pub fn index_text(&self, id: &str) -> String {
        self.keyed(id.as_bytes())
    }

    /// HMAC-SHA256 of `input` under the index key, hex, truncated to 128 bits.
    fn keyed(&self, input: &[u8]) -> String {
        let mut mac = self.inner.index.clone();
        mac.update(input);
        hex::encode(&mac.finalize().into_bytes()[..INDEX_BYTES])
    }

    /// The check value of the index key: stored once per database, compared at start-up.
    pub fn index_check(&self) -> String {
        self.keyed(b"gongji index key check")
    }

    /// A sealed check value for key `version`: stored once per database, opened at start-up.
    pub fn key_check(&self, version: u32) -> Option<String> {
        self.inner
            .ciphers
            .contains_key(&version)
            .then(|| self.seal_under(version, KEY_CHECK))
    }

    /// Whether a stored check value opens to what [`Vault::key_check`] sealed.
    pub fn key_check_holds(&self, sealed: &str) -> Result<(), OpenError> {
        let plain = self.open_bytes(sealed)?;
        if plain == KEY_CHECK {
            Ok(())
        } else {
            Err(OpenError::Tampered(Self::version_of(sealed).unwrap_or(0)))
        }
    }
}

/// The check values a database holds, by key version (0 for the index key), compared
/// with `vault` at start-up: the rows to add for versions new to the database, or why the
/// vault does not fit it.
///
/// A version the database knows must be present and right, so that a missing or wrong key
/// stops start-up rather than a read in the middle of the night; a version retired by
/// re-encryption has no check value left, so its key may then go.
pub fn check_keys(vault: &Vault, stored: &[(i64, String)]) -> Result<Vec<(i64, String)>, KeyError> {
    let mut missing = Vec::new();
    let index = stored.iter().find(|(v, _)| *v == 0);
    match index {
        Some((_, check)) if *check != vault.index_check() => {
            return Err(KeyError(
                "the index key is not the one this database was written with".to_owned(),
            ));
        }
        Some(_) => {}
        None => missing.push((0, vault.index_check())),
    }
    for (version, check) in stored.iter().filter(|(v, _)| *v != 0) {
        let version =
            u32::try_from(*version).map_err(|_| KeyError("a bad key check row".to_owned()))?;
        match vault.key_check_holds(check) {
            Ok(()) => {}
            Err(OpenError::UnknownKey(_)) => {
                return Err(KeyError(format!(
                    "this database holds data under key version {version}, which the key document does not have"
                )));
            }
            Err(_) => {
                return Err(KeyError(format!(
                    "key version {version} is not the key this database was written with"
                )));
            }
        }
    }
    for version in vault.versions() {
        if !stored.iter().any(|(v, _)| *v == i64::from(version)) {
            let check = vault
                .key_check(version)
                .unwrap_or_else(|| unreachable!("the vault holds its own versions"));
            missing.push((i64::from(version), check));
        }
    }
    Ok(missing)
}

/// What a key check value seals.
const KEY_CHECK: &[u8] = b"gongji data key check";

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "34052419800101001X";

    fn material(versions: &[u32]) -> KeyMaterial {
        KeyMaterial::parse(&keys::tests::toml_of(versions, 7)).unwrap()
    }

    #[test]
    fn a_sealed_value_names_its_key_opens_and_hides_its_plain_text() {
        let vault = Vault::new(&material(&[1, 2]));
        let sealed = vault.seal(ID);
        assert!(sealed.starts_with("v2:"), "{sealed}");
        assert!(!sealed.contains("1980"), "{sealed}");
        assert_ne!(vault.seal(ID), sealed, "a fresh nonce per value");
        assert_eq!(vault.open(&sealed).unwrap(), ID);
    }

    #[test]
    fn a_value_under_an_old_key_stays_readable_and_reseals_under_the_new_one() {
        let old = Vault::new(&material(&[1]));
        let sealed = old.seal(ID);
        let both = Vault::new(&material(&[1, 2]));
        assert_eq!(both.open(&sealed).unwrap(), ID);
        let resealed = both.reseal(&sealed).unwrap().unwrap();
        assert_eq!(Vault::version_of(&resealed), Some(2));
        assert_eq!(both.reseal(&resealed).unwrap(), None, "already current");
        let new_only = Vault::new(&material(&[2]));
        assert_eq!(new_only.open(&resealed).unwrap(), ID);
        assert_eq!(new_only.open(&sealed), Err(OpenError::UnknownKey(1)));
    }

    #[test]
    fn a_wrong_key_or_a_changed_byte_does_not_open() {
        let vault = Vault::new(&material(&[1]));
        let sealed = vault.seal(ID);
        let other = KeyMaterial::parse(&keys::tests::toml_of(&[1], 8)).unwrap();
        assert_eq!(
            Vault::new(&other).open(&sealed),
            Err(OpenError::Tampered(1))
        );
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        assert!(vault.open(&changed).is_err());
        assert_eq!(vault.open(ID), Err(OpenError::Malformed));
        assert_eq!(vault.open("v1:!!"), Err(OpenError::Malformed));
    }

    #[test]
    fn the_index_is_stable_keyed_and_not_the_plain_hash() {
        let vault = Vault::new(&material(&[1]));
        let id = IdNumber::parse(ID).unwrap();
        let index = vault.index(&id);
        assert_eq!(index, Vault::new(&material(&[1, 2])).index(&id));
        assert_eq!(index.len(), 2 * INDEX_BYTES);
        let other = KeyMaterial::parse(&keys::tests::toml_of(&[1], 8)).unwrap();
        assert_ne!(index, Vault::new(&other).index(&id), "keyed");
        use sha2::Digest as _;
        let unkeyed = hex::encode(sha2::Sha256::digest(ID.as_bytes()));
        assert!(!unkeyed.starts_with(&index));
    }

    #[test]
    fn a_database_refuses_a_missing_or_wrong_key_and_learns_new_versions() {
        let v1 = Vault::new(&material(&[1]));
        let first = check_keys(&v1, &[]).unwrap();
        assert_eq!(first.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(check_keys(&v1, &first).unwrap(), []);
        let v12 = Vault::new(&material(&[1, 2]));
        let added = check_keys(&v12, &first).unwrap();
        assert_eq!(added.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [2]);
        let stored: Vec<_> = first.iter().chain(&added).cloned().collect();
        let v2 = Vault::new(&material(&[2]));
        let error = check_keys(&v2, &stored).unwrap_err();
        assert!(error.0.contains("key version 1"), "{error}");
        let wrong = Vault::new(&KeyMaterial::parse(&keys::tests::toml_of(&[1], 8)).unwrap());
        let error = check_keys(&wrong, &first).unwrap_err();
        assert!(error.0.contains("index key"), "{error}");
        let wrong_data = [(0, v1.index_check()), (1, wrong.key_check(1).unwrap())];
        let error = check_keys(&v1, &wrong_data).unwrap_err();
        assert!(error.0.contains("not the key"), "{error}");
    }

    #[test]
    fn check_values_tell_the_right_key_from_a_wrong_one() {
        let vault = Vault::new(&material(&[1]));
        let check = vault.key_check(1).unwrap();
        assert!(vault.key_check_holds(&check).is_ok());
        let other = Vault::new(&KeyMaterial::parse(&keys::tests::toml_of(&[1], 8)).unwrap());
        assert!(other.key_check_holds(&check).is_err());
        assert_ne!(vault.index_check(), other.index_check());
        assert_eq!(vault.key_check(3), None);
    }
}
