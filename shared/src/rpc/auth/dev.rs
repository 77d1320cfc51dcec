//! A development identity provider (feature `dev-identity`): an Ed25519 key, its JWKS, and
//! tokens signed with it. For `gongji-local` and tests only; production keys come from the
//! real identity providers.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// One signing key of an issuer, with its public JWKS.
pub struct DevIssuer {
    pub issuer: String,
    pub audience: String,
    key_id: String,
    encoding: EncodingKey,
    /// The private key, PKCS #8 PEM, to keep it between runs.
    pub private_pem: String,
    /// The public key set, as a JWKS document.
    pub jwks: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
}

/// The key cannot be made or read.
#[derive(Debug, thiserror::Error)]
#[error("development issuer: {0}")]
pub struct DevIssuerError(String);

impl DevIssuer {
    /// A new key for `issuer`, whose tokens name `audience`.
    pub fn generate(issuer: &str, audience: &str) -> Result<Self, DevIssuerError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| DevIssuerError(e.to_string()))?;
        Self::from_pem(issuer, audience, &pair.serialize_pem())
    }

    /// The issuer of a key kept as PKCS #8 PEM.
    pub fn from_pem(issuer: &str, audience: &str, pem: &str) -> Result<Self, DevIssuerError> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| DevIssuerError(e.to_string()))?;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        let key_id = format!("dev-{}", &x[..8]);
        let jwks = serde_json::json!({
            "keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key_id, "alg": "EdDSA", "use": "sig"}]
        })
        .to_string();
        let encoding =
            EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| DevIssuerError(e.to_string()))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            key_id,
            encoding,
            private_pem: pem.to_owned(),
            jwks,
        })
    }

    /// A token for `subject`, valid from `now_s` (Unix seconds) for `lifetime_s`.
    pub fn token(&self, subject: &str, now_s: i64, lifetime_s: i64) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            sub: subject,
            iss: &self.issuer,
            aud: &self.audience,
            exp: now_s + lifetime_s,
            iat: now_s,
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap_or_default()
    }

    /// A token for `subject` valid for `lifetime_s` from now.
    pub fn token_now(&self, subject: &str, lifetime_s: i64) -> String {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.token(subject, now_s, lifetime_s)
    }
}
