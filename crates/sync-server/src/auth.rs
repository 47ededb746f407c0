//! Bearer tokens as Supabase issues them: HS256 with the project's JWT secret, or an
//! asymmetric key (ES256, RS256, EdDSA) from a JWKS. A token must be signed by a trusted
//! key, unexpired and past its `nbf`, for the configured audience (and issuer, when one
//! is configured), and name a user (`sub`, a uuid).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::config::JwksSource;

/// Why a request's credentials were not accepted. The text never holds the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("no bearer token")]
    Missing,
    /// The token is not a JWT, or is signed with an algorithm this server does not take.
    #[error("the token is malformed or uses an algorithm this server does not accept")]
    Malformed,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// The signature does not verify with any trusted key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `nbf` has not come yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is not this server's audience.
    #[error("the token is for another audience")]
    WrongAudience,
    /// `iss` is missing or not the configured issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// The token names a key the server does not have.
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    /// No `sub`, or one that is not a user id.
    #[error("the token names no user")]
    NoUser,
    /// The server could not load its keys (an unreachable JWKS URL): the server's
    /// trouble, answered as unavailable (clients retry), not as unauthorized.
    #[error("the server's token keys are unavailable")]
    KeysUnavailable,
}

/// The keys could not be loaded at start.
#[derive(Debug, thiserror::Error)]
#[error("the JWKS could not be loaded: {0}")]
pub struct KeysError(String);

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<f64>,
}

/// Clock skew allowed between the token's issuer and this server, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// An accepted token: whose it is, and until when it is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The user (`sub`).
    pub user: Uuid,
    /// When the token stops being accepted (`exp` plus the leeway).
    pub until: std::time::SystemTime,
}

/// One asymmetric key of the set, ready to verify.
struct PublicKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// A JWKS URL is fetched again for an unknown key at most this often by default, so
/// forged tokens with random key ids cannot make the server hammer the identity provider.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);

/// Checks bearer tokens.
pub struct Verifier {
    secret: Option<DecodingKey>,
    keys: Mutex<HashMap<Option<String>, std::sync::Arc<PublicKey>>>,
    source: Option<JwksSource>,
    last_fetch: Mutex<Option<Instant>>,
    /// The last fetch of a JWKS URL failed (or none has succeeded yet): a key the server
    /// does not know may be one it could not load, so the token is not judged forged.
    fetch_failed: AtomicBool,
    refetch_every: Duration,
    audience: String,
    issuer: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.secret.is_some())
            .field("jwks", &self.source)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for tokens of `audience`, signed with `secret` (HS256) or a key of
    /// `jwks`, loaded now (a URL that cannot be fetched yet is tried again on demand).
    pub async fn new(
        secret: Option<&str>,
        jwks: Option<JwksSource>,
        audience: &str,
    ) -> Result<Verifier, KeysError> {
        let verifier = Verifier {
            secret: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            keys: Mutex::new(HashMap::new()),
            source: jwks.clone(),
            last_fetch: Mutex::new(None),
            fetch_failed: AtomicBool::new(matches!(jwks, Some(JwksSource::Url(_)))),
            refetch_every: REFETCH_EVERY,
            audience: audience.to_owned(),
            issuer: None,
            http: reqwest::Client::builder()
                .use_rustls_tls()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| KeysError(e.to_string()))?,
        };
        match &verifier.source {
            Some(JwksSource::File(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| KeysError(format!("{}: {e}", path.display())))?;
                verifier.install(&text)?;
            }
            Some(JwksSource::Url(_)) => {
                if let Err(e) = verifier.refetch().await {
                    tracing::warn!(error = %e, "the JWKS URL could not be fetched; trying again when a token needs it");
                }
            }
            None => {}
        }
        Ok(verifier)
    }

    /// Fetches a JWKS URL again for an unknown key at most every `interval` (default
    /// [`REFETCH_EVERY`]).
    pub fn with_refetch_interval(mut self, interval: Duration) -> Verifier {
        self.refetch_every = interval;
        self
    }

    /// Also requires tokens to carry `iss` = `issuer` (Supabase's is
    /// `https://<project-ref>.supabase.co/auth/v1`); `None`: `iss` is not checked.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let verifier = sync_server::Verifier::new(Some("secret"), None, "authenticated")
    ///     .await?
    ///     .with_issuer(Some("https://abcd.supabase.co/auth/v1".into()));
    /// # Ok(()) }
    /// ```
    pub fn with_issuer(mut self, issuer: Option<String>) -> Verifier {
        self.issuer = issuer;
        self
    }

    /// Replaces the key set with the JWKS document `text`.
    fn install(&self, text: &str) -> Result<(), KeysError> {
        let set: JwkSet = serde_json::from_str(text).map_err(|e| KeysError(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // A key this server cannot use (a symmetric one in a JWKS, an unknown curve)
            // is left out rather than failing the whole set.
            if let Some(algorithm) = algorithm_of(jwk)
                && let Ok(key) = DecodingKey::from_jwk(jwk)
            {
                keys.insert(
                    jwk.common.key_id.clone(),
                    std::sync::Arc::new(PublicKey { algorithm, key }),
                );
            }
        }
        *self.keys.lock().expect("keys lock") = keys;
        Ok(())
    }

    /// Fetches the JWKS URL again (rate-limited); `Ok(false)` when it was fetched too
    /// recently to try.
    async fn refetch(&self) -> Result<bool, KeysError> {
        let Some(JwksSource::Url(url)) = &self.source else {
            return Ok(false);
        };
        {
            let mut last = self.last_fetch.lock().expect("fetch lock");
            if last.is_some_and(|at| at.elapsed() < self.refetch_every) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        let fetched = async {
            let text = self
                .http
                .get(url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| KeysError(e.without_url().to_string()))?
                .text()
                .await
                .map_err(|e| KeysError(e.without_url().to_string()))?;
            self.install(&text)
        }
        .await;
        self.fetch_failed.store(fetched.is_err(), Ordering::SeqCst);
        fetched.map(|()| true)
    }

    /// The user a request's `Authorization` header value stands for.
    pub async fn user(&self, authorization: Option<&str>) -> Result<Uuid, AuthError> {
        self.session(authorization).await.map(|s| s.user)
    }

    /// The user a request's `Authorization` header value stands for, and until when:
    /// a long-lived request (the live-update stream) ends then.
    pub async fn session(&self, authorization: Option<&str>) -> Result<Session, AuthError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => match &self.secret {
                Some(secret) => (KeyRef::Secret(secret), Algorithm::HS256),
                None => return Err(AuthError::UnknownKey),
            },
            Algorithm::ES256 | Algorithm::RS256 | Algorithm::EdDSA => {
                let key = match self.public_key(&header.kid) {
                    Some(key) => key,
                    None => {
                        if let Err(e) = self.refetch().await {
                            tracing::warn!(error = %e, "the JWKS URL could not be fetched");
                        }
                        match self.public_key(&header.kid) {
                            Some(key) => key,
                            // Not loaded (now, or at the last try, which a rate limit
                            // stands by): the server's trouble, not a forged token.
                            None if self.fetch_failed.load(Ordering::SeqCst) => {
                                return Err(AuthError::KeysUnavailable);
                            }
                            None => return Err(AuthError::UnknownKey),
                        }
                    }
                };
                if key.algorithm != header.alg {
                    return Err(AuthError::Malformed);
                }
                let algorithm = key.algorithm;
                (KeyRef::Public(key), algorithm)
            }
            _ => return Err(AuthError::Malformed),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[self.audience.as_str()]);
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer.as_str()]);
                validation.set_required_spec_claims(&["exp", "aud", "sub", "iss"]);
            }
            None => validation.set_required_spec_claims(&["exp", "aud", "sub"]),
        }
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let decoded = jsonwebtoken::decode::<Claims>(token, key.decoding(), &validation)
            .map_err(|e| classify(e.kind()))?;
        let user = decoded
            .claims
            .sub
            .as_deref()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or(AuthError::NoUser)?;
        // `exp` is required and checked above, so it is a number here.
        let exp = decoded.claims.exp.unwrap_or(0.0).max(0.0) as u64;
        Ok(Session {
            user,
            until: std::time::UNIX_EPOCH + Duration::from_secs(exp.saturating_add(LEEWAY_SECS)),
        })
    }

    /// The key named `kid`, or the only key when the token names none.
    fn public_key(&self, kid: &Option<String>) -> Option<std::sync::Arc<PublicKey>> {
        let keys = self.keys.lock().expect("keys lock");
        match keys.get(kid) {
            Some(key) => Some(key.clone()),
            None if kid.is_none() && keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }
}

enum KeyRef<'a> {
    Secret(&'a DecodingKey),
    Public(std::sync::Arc<PublicKey>),
}

impl KeyRef<'_> {
    fn decoding(&self) -> &DecodingKey {
        match self {
            KeyRef::Secret(key) => key,
            KeyRef::Public(key) => &key.key,
        }
    }
}

/// The algorithm a JWKS key verifies, from its `alg` or else its key type.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    match jwk.common.key_algorithm {
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => None,
        None => match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Some(Algorithm::ES256)
            }
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Some(Algorithm::EdDSA)
            }
            _ => None,
        },
    }
}

fn classify(kind: &jsonwebtoken::errors::ErrorKind) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => AuthError::NoUser,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
        _ => AuthError::Malformed,
    }
}
