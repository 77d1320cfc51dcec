//! Signed tokens (JWT), checked against the public keys of one issuer (a JWKS file), with
//! issuer, audience and expiry verified. Callers present one as `authorization: Bearer`;
//! citizen channels present the identity provider's one for the acting person.

use std::{collections::HashMap, sync::Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind, jwk::JwkSet};
use serde::Deserialize;

/// Most keys one JWKS file holds.
const MAX_KEYS: usize = 32;
/// Longest token accepted: a bound on the work of one check.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew allowed on expiry, in seconds.
const LEEWAY_S: u64 = 30;
/// Tokens whose check is remembered: a caller presents the same token on every call, and a
/// signature check costs more than the rest of a cheap call. Bounded; cleared when full.
const MAX_CACHED_TOKENS: usize = 4_096;

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Invalid,
    Expired,
}

/// One issuer's keys and the audience tokens must name.
pub struct TokenVerifier {
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
    validation_issuer: String,
    audience: String,
    /// Tokens already checked: their subject and expiry (Unix seconds).
    checked: Mutex<HashMap<String, (String, u64)>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.validation_issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// A NumericDate: seconds, possibly with a fraction.
    exp: f64,
}

/// The JWKS cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("JWKS: {0}")]
pub struct KeysError(String);

impl TokenVerifier {
    /// Keys from a JWKS document; tokens must come from `issuer` for `audience`.
    pub fn from_jwks(jwks: &str, issuer: &str, audience: &str) -> Result<Self, KeysError> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| KeysError(e.to_string()))?;
        if set.keys.is_empty() || set.keys.len() > MAX_KEYS {
            return Err(KeysError(format!("1 to {MAX_KEYS} keys")));
        }
        if issuer.is_empty() || audience.is_empty() {
            return Err(KeysError("an issuer and an audience are required".into()));
        }
        let mut keys = Vec::with_capacity(set.keys.len());
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| KeysError(e.to_string()))?;
            let algorithm = match jwk.common.key_algorithm {
                Some(alg) => alg
                    .to_string()
                    .parse::<Algorithm>()
                    .map_err(|_| KeysError(format!("unsupported algorithm {alg}")))?,
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    _ => return Err(KeysError("a key of no supported kind".into())),
                },
            };
            if algorithm == Algorithm::HS256
                || algorithm == Algorithm::HS384
                || algorithm == Algorithm::HS512
            {
                return Err(KeysError("shared-secret keys are not accepted".into()));
            }
            keys.push((jwk.common.key_id.clone(), algorithm, key));
        }
        Ok(Self {
            keys,
            validation_issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            checked: Mutex::default(),
        })
    }

    /// The token's subject, once its signature, issuer, audience and expiry hold.
    pub fn subject(&self, token: &str) -> Result<String, TokenRefusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRefusal::Invalid);
        }
        let now_s = jsonwebtoken::get_current_timestamp();
        {
            let mut checked = self.checked();
            match checked.get(token) {
                Some((subject, exp_s)) if now_s <= exp_s.saturating_add(LEEWAY_S) => {
                    return Ok(subject.clone());
                }
                Some(_) => {
                    checked.remove(token);
                    return Err(TokenRefusal::Expired);
                }
                None => {}
            }
        }
        let (subject, exp_s) = self.verify(token)?;
        let mut checked = self.checked();
        if checked.len() >= MAX_CACHED_TOKENS {
            checked.clear();
        }
        checked.insert(token.to_owned(), (subject.clone(), exp_s));
        Ok(subject)
    }

    fn checked(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u64)>> {
        self.checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the signature, issuer, audience and expiry: the subject and the expiry.
    fn verify(&self, token: &str) -> Result<(String, u64), TokenRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRefusal::Invalid)?;
        let candidates = self.keys.iter().filter(|(kid, alg, _)| {
            *alg == header.alg && (header.kid.is_none() || kid.is_none() || *kid == header.kid)
        });
        let mut refusal = TokenRefusal::Invalid;
        for (_, algorithm, key) in candidates {
            let mut validation = Validation::new(*algorithm);
            validation.set_issuer(&[&self.validation_issuer]);
            validation.set_audience(&[&self.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = LEEWAY_S;
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) if !data.claims.sub.is_empty() => {
                    // Expiry was validated: a finite, non-negative number of seconds.
                    let exp_s = data.claims.exp.max(0.0) as u64;
                    return Ok((data.claims.sub, exp_s));
                }
                Ok(_) => return Err(TokenRefusal::Invalid),
                // Expiry is checked after the signature: an expired token was genuine.
                Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                    refusal = TokenRefusal::Expired;
                }
                Err(_) => {}
            }
        }
        Err(refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::auth::dev::DevIssuer;

    fn now_s() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
    }

    #[test]
    fn a_token_of_the_issuer_for_the_audience_names_its_subject() {
        let issuer = DevIssuer::generate("https://idp.test", "gongji").unwrap();
        let verifier =
            TokenVerifier::from_jwks(&issuer.jwks, "https://idp.test", "gongji").unwrap();
        let token = issuer.token("caller-a", now_s(), 60);
        assert_eq!(verifier.subject(&token).as_deref(), Ok("caller-a"));
    }

    #[test]
    fn an_expired_token_is_expired_and_a_foreign_one_invalid() {
        let issuer = DevIssuer::generate("https://idp.test", "gongji").unwrap();
        let verifier =
            TokenVerifier::from_jwks(&issuer.jwks, "https://idp.test", "gongji").unwrap();
        let old = issuer.token("caller-a", now_s() - 3_600, 60);
        assert_eq!(verifier.subject(&old), Err(TokenRefusal::Expired));
        let other = DevIssuer::generate("https://idp.test", "gongji").unwrap();
        let forged = other.token("caller-a", now_s(), 60);
        assert_eq!(verifier.subject(&forged), Err(TokenRefusal::Invalid));
        let wrong_audience =
            DevIssuer::from_pem("https://idp.test", "elsewhere", &issuer.private_pem)
                .unwrap()
                .token("caller-a", now_s(), 60);
        assert_eq!(
            verifier.subject(&wrong_audience),
            Err(TokenRefusal::Invalid)
        );
        let wrong_issuer = DevIssuer::from_pem("https://evil.test", "gongji", &issuer.private_pem)
            .unwrap()
            .token("caller-a", now_s(), 60);
        assert_eq!(verifier.subject(&wrong_issuer), Err(TokenRefusal::Invalid));
        assert_eq!(verifier.subject("not.a.token"), Err(TokenRefusal::Invalid));
    }

    #[test]
    fn a_remembered_token_is_answered_again_and_still_expires() {
        let issuer = DevIssuer::generate("https://idp.test", "gongji").unwrap();
        let verifier =
            TokenVerifier::from_jwks(&issuer.jwks, "https://idp.test", "gongji").unwrap();
        let token = issuer.token("caller-a", now_s(), 60);
        assert_eq!(verifier.subject(&token).as_deref(), Ok("caller-a"));
        assert_eq!(
            verifier.subject(&token).as_deref(),
            Ok("caller-a"),
            "from memory"
        );
        // A remembered token past its expiry (and the leeway) is expired, not remembered.
        verifier.checked().get_mut(&token).expect("remembered").1 =
            u64::try_from(now_s()).unwrap() - 3_600;
        assert_eq!(verifier.subject(&token), Err(TokenRefusal::Expired));
        // A forged token is never remembered as good.
        let forged = DevIssuer::generate("https://idp.test", "gongji")
            .unwrap()
            .token("caller-a", now_s(), 60);
        assert_eq!(verifier.subject(&forged), Err(TokenRefusal::Invalid));
        assert_eq!(verifier.subject(&forged), Err(TokenRefusal::Invalid));
    }

    #[test]
    fn a_jwks_without_keys_or_with_a_shared_secret_is_refused() {
        assert!(TokenVerifier::from_jwks(r#"{"keys":[]}"#, "i", "a").is_err());
        let secret = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}"#;
        assert!(TokenVerifier::from_jwks(secret, "i", "a").is_err());
    }
}
