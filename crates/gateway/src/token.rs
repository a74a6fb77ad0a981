//! Bearer JWTs: verification with pinned algorithms and required claims, and minting for
//! `promo token` and tests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kernel::{Principal, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Issuer and audience of every token this platform accepts.
pub const ISSUER: &str = "promo";
pub const AUDIENCE: &str = "promo";

/// The claims of a platform token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The principal: a user, factory, service or operator. Everything a token does, it does as
    /// this id (a factory's wallet and materials belong to it).
    pub sub: String,
    pub workspace: String,
    pub roles: Vec<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    /// Not valid before this instant (unix seconds), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
    pub aud: String,
}

/// Why a token was refused; every case answers UNAUTHENTICATED. Expired and not-yet-valid tokens
/// get reasons of their own; the detail of the rest only goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token lives {lifetime} s, longer than the {maximum} s maximum")]
    TooLong { lifetime: i64, maximum: i64 },
    #[error("token rejected: {0}")]
    Rejected(jsonwebtoken::errors::Error),
    #[error("claim {0} is malformed")]
    BadClaim(&'static str),
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(error: jsonwebtoken::errors::Error) -> TokenError {
        match error.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            _ => TokenError::Rejected(error),
        }
    }
}

/// Verifies tokens against the configured keys.
#[derive(Clone)]
pub struct TokenVerifier {
    /// `(key, validation)` pairs tried in order: the shared secret (HS256), then the identity
    /// provider's public key if one is configured.
    keys: Vec<(DecodingKey, Validation)>,
    /// Tokens already verified, with their principal and expiry (unix seconds): a caller sends the
    /// same token on every call, and re-checking its signature each time is the gateway's largest
    /// fixed cost. Keyed by the whole token, signature included, so nothing unverified can hit.
    verified: Arc<RwLock<HashMap<String, (Principal, i64)>>>,
    /// Longest a token may live, in seconds (`exp - iat`, and `exp - now`).
    max_lifetime: i64,
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Bound on cached verified tokens; past it the cache starts over.
const MAX_CACHED_TOKENS: usize = 50_000;

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS;
    validation
}

impl TokenVerifier {
    pub fn new(
        secret: &[u8],
        public_key: Option<(&Path, Algorithm)>,
        max_lifetime_seconds: u64,
    ) -> Result<TokenVerifier, String> {
        let mut keys = vec![(
            DecodingKey::from_secret(secret),
            validation(Algorithm::HS256),
        )];
        if let Some((path, algorithm)) = public_key {
            let pem = std::fs::read(path)
                .map_err(|error| format!("jwt_public_key_file {}: {error}", path.display()))?;
            let key = match algorithm {
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => DecodingKey::from_rsa_pem(&pem),
            }
            .map_err(|error| format!("jwt_public_key_file {}: {error}", path.display()))?;
            keys.push((key, validation(algorithm)));
        }
        Ok(TokenVerifier {
            keys,
            verified: Arc::default(),
            max_lifetime: i64::try_from(max_lifetime_seconds).unwrap_or(i64::MAX),
        })
    }

    /// The principal a token names, if any configured key accepts it.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let now = chrono::Utc::now().timestamp();
        if let Ok(verified) = self.verified.read()
            && let Some((principal, expires)) = verified.get(token)
            && now < *expires
        {
            return Ok(principal.clone());
        }
        let (principal, expires) = self.verify_uncached(token)?;
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= MAX_CACHED_TOKENS {
                verified.clear();
            }
            verified.insert(token.to_owned(), (principal.clone(), expires));
        }
        Ok(principal)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Principal, i64), TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        let mut last_error = None;
        for (key, validation) in &self.keys {
            if !validation.algorithms.contains(&header.alg) {
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => {
                    self.check_lifetime(&data.claims)?;
                    return Ok((principal_of(&data.claims)?, data.claims.exp));
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into())
            .into())
    }

    /// A token may not live longer than the configured maximum: measured from its `iat`, and from
    /// now (so a token without `iat`, or with a made-up one, gains nothing).
    fn check_lifetime(&self, claims: &Claims) -> Result<(), TokenError> {
        let now = chrono::Utc::now().timestamp();
        let issued = if claims.iat > 0 {
            claims.iat.min(now)
        } else {
            now
        };
        let lifetime = claims.exp.saturating_sub(issued);
        let remaining = claims.exp.saturating_sub(now);
        if lifetime > self.max_lifetime
            || remaining > self.max_lifetime.saturating_add(LEEWAY_SECONDS as i64)
        {
            return Err(TokenError::TooLong {
                lifetime: lifetime.max(remaining),
                maximum: self.max_lifetime,
            });
        }
        Ok(())
    }
}

/// A canonical, non-nil UUID claim.
fn uuid_claim(value: &str, claim: &'static str) -> Result<Uuid, TokenError> {
    kernel::ids::parse_uuid("promo.kernel", claim, value).map_err(|_| TokenError::BadClaim(claim))
}

fn principal_of(claims: &Claims) -> Result<Principal, TokenError> {
    let subject = uuid_claim(&claims.sub, "sub")?;
    let workspace_id = uuid_claim(&claims.workspace, "workspace")?;
    let roles = claims
        .roles
        .iter()
        .map(|role| role.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TokenError::BadClaim("roles"))?;
    if roles.is_empty() {
        return Err(TokenError::BadClaim("roles"));
    }
    Ok(Principal {
        subject,
        workspace_id,
        roles,
    })
}

/// Signs HS256 tokens with the shared secret.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
}

impl TokenIssuer {
    pub fn new(secret: &[u8]) -> TokenIssuer {
        TokenIssuer {
            key: EncodingKey::from_secret(secret),
        }
    }

    /// A token for `subject` in `workspace_id` with `roles`, valid for `ttl_seconds` (negative
    /// values mint already-expired tokens, which tests use).
    pub fn issue(
        &self,
        subject: Uuid,
        workspace_id: Uuid,
        roles: &[Role],
        ttl_seconds: i64,
    ) -> Result<String, String> {
        let now = chrono::Utc::now().timestamp();
        self.issue_claims(&Claims {
            sub: subject.to_string(),
            workspace: workspace_id.to_string(),
            roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
            exp: now + ttl_seconds,
            iat: now,
            nbf: None,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        })
    }

    pub fn issue_claims(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .map_err(|error| error.to_string())
    }
}

/// Where the HS256 secret came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `jwt_secret` / `PROMO_JWT_SECRET`.
    Configured,
    /// Read from this file in the data directory.
    File(std::path::PathBuf),
    /// Generated just now into this file: no server has used it yet.
    Created(std::path::PathBuf),
}

/// The HS256 secret: configured, or generated once into `data_dir/jwt-secret` (mode 0600).
pub fn load_or_create_secret(
    configured: &str,
    data_dir: &Path,
) -> Result<(Vec<u8>, SecretSource), String> {
    if !configured.is_empty() {
        return Ok((configured.as_bytes().to_vec(), SecretSource::Configured));
    }
    let path = std::path::absolute(data_dir.join("jwt-secret"))
        .map_err(|error| format!("data_dir {}: {error}", data_dir.display()))?;
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok((existing.as_bytes().to_vec(), SecretSource::File(path)));
        }
        return Err(format!(
            "{} holds fewer than 32 bytes; delete it to generate a new one",
            path.display()
        ));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|error| format!("data_dir {}: {error}", data_dir.display()))?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, &secret).map_err(|error| format!("{}: {error}", path.display()))?;
    Ok((secret.into_bytes(), SecretSource::Created(path)))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_and_carry_the_principal() {
        let (subject, workspace) = (Uuid::new_v4(), Uuid::new_v4());
        let token = TokenIssuer::new(SECRET)
            .issue(subject, workspace, &[Role::Factory], 60)
            .expect("token");
        let principal = TokenVerifier::new(SECRET, None, 3600)
            .expect("verifier")
            .verify(&token)
            .expect("valid");
        assert_eq!(
            (principal.subject, principal.workspace_id),
            (subject, workspace)
        );
        assert_eq!(principal.roles, [Role::Factory]);
    }

    #[test]
    fn expired_foreign_audience_unknown_role_and_wrong_key_are_refused() {
        let issuer = TokenIssuer::new(SECRET);
        let verifier = TokenVerifier::new(SECRET, None, 3600).expect("verifier");
        let (subject, workspace) = (Uuid::new_v4(), Uuid::new_v4());
        let expired = issuer
            .issue(subject, workspace, &[Role::Admin], -3600)
            .expect("token");
        assert!(verifier.verify(&expired).is_err());
        let valid = issuer
            .issue(subject, workspace, &[Role::Admin], 60)
            .expect("token");
        let mut claims: Claims = jsonwebtoken::dangerous::insecure_decode(&valid)
            .expect("claims")
            .claims;
        claims.aud = "someone-else".to_owned();
        assert!(
            verifier
                .verify(&issuer.issue_claims(&claims).expect("token"))
                .is_err()
        );
        claims.aud = AUDIENCE.to_owned();
        claims.roles = vec!["root".to_owned()];
        assert!(
            verifier
                .verify(&issuer.issue_claims(&claims).expect("token"))
                .is_err()
        );
        let other = TokenIssuer::new(b"another-secret-another-secret-xx").issue(
            subject,
            workspace,
            &[Role::Admin],
            60,
        );
        assert!(verifier.verify(&other.expect("token")).is_err());
    }

    #[test]
    fn an_identity_providers_eddsa_tokens_verify_beside_the_shared_secret() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let public_key = fixtures.join("idp-ed25519-public.pem");
        let verifier = TokenVerifier::new(SECRET, Some((&public_key, Algorithm::EdDSA)), 3600)
            .expect("verifier with public key");
        let sign_with = |private_key: &str| {
            let pem = std::fs::read(fixtures.join(private_key)).expect("private key");
            let key = EncodingKey::from_ed_pem(&pem).expect("ed25519 key");
            let now = chrono::Utc::now().timestamp();
            let claims = Claims {
                sub: Uuid::new_v4().to_string(),
                workspace: Uuid::new_v4().to_string(),
                roles: vec!["ops".to_owned()],
                exp: now + 60,
                iat: now,
                nbf: None,
                iss: ISSUER.to_owned(),
                aud: AUDIENCE.to_owned(),
            };
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).expect("signed")
        };
        let principal = verifier
            .verify(&sign_with("idp-ed25519-private.pem"))
            .expect("provider token");
        assert_eq!(principal.roles, [Role::Ops]);
        assert!(
            verifier
                .verify(&sign_with("other-ed25519-private.pem"))
                .is_err(),
            "another key is refused"
        );
        let shared = TokenIssuer::new(SECRET)
            .issue(Uuid::new_v4(), Uuid::new_v4(), &[Role::Admin], 60)
            .expect("token");
        assert!(verifier.verify(&shared).is_ok(), "HS256 keeps working");
        let without_key = TokenVerifier::new(SECRET, None, 3600).expect("verifier");
        assert!(
            without_key
                .verify(&sign_with("idp-ed25519-private.pem"))
                .is_err(),
            "EdDSA only when configured"
        );
    }

    #[test]
    fn a_generated_secret_is_kept_reused_and_its_source_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, source) = load_or_create_secret("", dir.path()).expect("created");
        assert!(matches!(source, SecretSource::Created(path) if path.is_absolute()));
        let (second, source) = load_or_create_secret("", dir.path()).expect("reused");
        assert!(matches!(source, SecretSource::File(_)));
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
    }

    fn claims(subject: &str, exp_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: subject.to_owned(),
            workspace: Uuid::new_v4().to_string(),
            roles: vec!["admin".to_owned()],
            exp: now + exp_in,
            iat: now,
            nbf: None,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        }
    }

    #[test]
    fn nil_subjects_future_nbf_and_overlong_tokens_are_refused_and_expiry_is_its_own_reason() {
        let issuer = TokenIssuer::new(SECRET);
        let verifier = TokenVerifier::new(SECRET, None, 3600).expect("verifier");
        let sign = |claims: &Claims| issuer.issue_claims(claims).expect("token");
        let nil = claims("00000000-0000-0000-0000-000000000000", 60);
        assert!(matches!(
            verifier.verify(&sign(&nil)),
            Err(TokenError::BadClaim("sub"))
        ));
        let mut later = claims(&Uuid::new_v4().to_string(), 600);
        later.nbf = Some(chrono::Utc::now().timestamp() + 300);
        assert!(matches!(
            verifier.verify(&sign(&later)),
            Err(TokenError::NotYetValid)
        ));
        let forever = claims(&Uuid::new_v4().to_string(), i64::MAX / 2);
        assert!(matches!(
            verifier.verify(&sign(&forever)),
            Err(TokenError::TooLong { .. })
        ));
        let mut no_iat = claims(&Uuid::new_v4().to_string(), 7200);
        no_iat.iat = 0;
        assert!(
            matches!(
                verifier.verify(&sign(&no_iat)),
                Err(TokenError::TooLong { .. })
            ),
            "no iat still may not outlive the maximum"
        );
        let expired = claims(&Uuid::new_v4().to_string(), -3600);
        assert!(matches!(
            verifier.verify(&sign(&expired)),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            verifier.verify("garbage"),
            Err(TokenError::Rejected(_))
        ));
        let fine = claims(&Uuid::new_v4().to_string(), 3000);
        assert!(verifier.verify(&sign(&fine)).is_ok());
    }
}
