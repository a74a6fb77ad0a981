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
    pub sub: String,
    pub workspace: String,
    pub roles: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub aud: String,
}

/// Why a token was refused; every case answers UNAUTHENTICATED, the reason only goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token rejected: {0}")]
    Rejected(#[from] jsonwebtoken::errors::Error),
    #[error("claim {0} is malformed")]
    BadClaim(&'static str),
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
}

/// Bound on cached verified tokens; past it the cache starts over.
const MAX_CACHED_TOKENS: usize = 50_000;

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    validation
}

impl TokenVerifier {
    pub fn new(
        secret: &[u8],
        public_key: Option<(&Path, Algorithm)>,
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
                Ok(data) => return Ok((principal_of(&data.claims)?, data.claims.exp)),
                Err(error) => last_error = Some(error),
            }
        }
        Err(TokenError::Rejected(last_error.unwrap_or_else(|| {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into()
        })))
    }
}

fn principal_of(claims: &Claims) -> Result<Principal, TokenError> {
    let subject = Uuid::try_parse(&claims.sub).map_err(|_| TokenError::BadClaim("sub"))?;
    let workspace_id =
        Uuid::try_parse(&claims.workspace).map_err(|_| TokenError::BadClaim("workspace"))?;
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
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        })
    }

    pub fn issue_claims(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .map_err(|error| error.to_string())
    }
}

/// The HS256 secret: configured, or generated once into `data_dir/jwt-secret` (mode 0600).
pub fn load_or_create_secret(configured: &str, data_dir: &Path) -> Result<Vec<u8>, String> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(existing.as_bytes().to_vec());
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
    Ok(secret.into_bytes())
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
        let principal = TokenVerifier::new(SECRET, None)
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
        let verifier = TokenVerifier::new(SECRET, None).expect("verifier");
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
        let verifier = TokenVerifier::new(SECRET, Some((&public_key, Algorithm::EdDSA)))
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
        let without_key = TokenVerifier::new(SECRET, None).expect("verifier");
        assert!(
            without_key
                .verify(&sign_with("idp-ed25519-private.pem"))
                .is_err(),
            "EdDSA only when configured"
        );
    }

    #[test]
    fn a_generated_secret_is_kept_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create_secret("", dir.path()).expect("created");
        let second = load_or_create_secret("", dir.path()).expect("reused");
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
    }
}
