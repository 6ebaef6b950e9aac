//! Protection of `/metrics` in a cluster, as controller-runtime's
//! `filters.WithAuthenticationAndAuthorization` that v1.0.1 uses: the bearer token is
//! checked with a TokenReview, then the user is authorized for the non-resource URL with a
//! SubjectAccessReview. Answers are cached as upstream (token 1 min; allow 5 min, deny 30 s).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;

const TOKEN_TTL: Duration = Duration::from_secs(60);
const ALLOW_TTL: Duration = Duration::from_secs(300);
const DENY_TTL: Duration = Duration::from_secs(30);
/// Entries per cache; a flood of distinct tokens empties it rather than grow it.
const MAX_CACHED: usize = 4096;

/// (user, verb, path) of a SubjectAccessReview.
type DecisionKey = (String, String, String);

/// Why a scrape was refused, with the HTTP status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer token, or the token was not accepted (401).
    #[error("Unauthorized")]
    Unauthenticated,
    /// The user may not get this path (403).
    #[error("Authorization denied for user {0}")]
    Forbidden(String),
    /// The API server could not be asked (500).
    #[error("Authorization for user {user} failed: {detail}")]
    ReviewFailed { user: String, detail: String },
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Unauthenticated => 401,
            AuthError::Forbidden(_) => 403,
            AuthError::ReviewFailed { .. } => 500,
        }
    }
}

/// Checks scrapes of the metrics endpoint against the API server.
pub struct MetricsAuth {
    client: kube::Client,
    /// Token -> authenticated user (None: rejected), with expiry.
    tokens: Mutex<HashMap<String, (Instant, Option<UserInfo>)>>,
    /// (user, verb, path) -> allowed, with expiry.
    decisions: Mutex<HashMap<DecisionKey, (Instant, bool)>>,
}

impl std::fmt::Debug for MetricsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAuth").finish_non_exhaustive()
    }
}

impl MetricsAuth {
    pub fn new(client: kube::Client) -> Self {
        MetricsAuth {
            client,
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// Allows the request or says why not. `authorization` is the raw header value.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
    ) -> Result<(), AuthError> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Unauthenticated)?;
        let user = self.authenticate(token).await?;
        let name = user.username.clone().unwrap_or_default();
        if self
            .authorize(&user, &method.to_ascii_lowercase(), path)
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::Forbidden(name))
        }
    }

    async fn authenticate(&self, token: &str) -> Result<UserInfo, AuthError> {
        let now = Instant::now();
        if let Some((expires, user)) = self.tokens.lock().get(token)
            && *expires > now
        {
            return user.clone().ok_or(AuthError::Unauthenticated);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await;
        let user = match answer {
            Ok(review) => review
                .status
                .filter(|status| status.authenticated == Some(true))
                .and_then(|status| status.user),
            Err(error) => {
                // Not cached: the next scrape asks again.
                tracing::warn!(%error, "metrics auth: TokenReview failed");
                return Err(AuthError::Unauthenticated);
            }
        };
        insert_bounded(
            &mut self.tokens.lock(),
            token.to_owned(),
            (now + TOKEN_TTL, user.clone()),
        );
        user.ok_or(AuthError::Unauthenticated)
    }

    async fn authorize(&self, user: &UserInfo, verb: &str, path: &str) -> Result<bool, AuthError> {
        let name = user.username.clone().unwrap_or_default();
        let key = (name.clone(), verb.to_owned(), path.to_owned());
        let now = Instant::now();
        if let Some((expires, allowed)) = self.decisions.lock().get(&key)
            && *expires > now
        {
            return Ok(*allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some(verb.to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|error| AuthError::ReviewFailed {
                user: name.clone(),
                detail: error.to_string(),
            })?;
        let allowed = answer
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true));
        let ttl = if allowed { ALLOW_TTL } else { DENY_TTL };
        insert_bounded(&mut self.decisions.lock(), key, (now + ttl, allowed));
        Ok(allowed)
    }
}

fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_CACHED {
        map.clear();
    }
    map.insert(key, value);
}
