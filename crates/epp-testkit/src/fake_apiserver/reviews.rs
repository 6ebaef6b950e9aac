//! TokenReview and SubjectAccessReview, as `/metrics` authentication uses them: known
//! tokens map to users, and users are granted (verb, non-resource path) pairs.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

pub(crate) const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
pub(crate) const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// Who the tokens are and what they may do.
#[derive(Default)]
pub(crate) struct Reviews {
    /// token -> (user name, groups)
    pub(crate) tokens: HashMap<String, (String, Vec<String>)>,
    /// (user, verb, path) allowed.
    pub(crate) grants: HashSet<(String, String, String)>,
}

impl Reviews {
    /// The answer to a POST of `path` with `body`, if `path` is a review endpoint.
    pub(crate) fn answer(&self, path: &str, body: &[u8]) -> Option<(u16, Value)> {
        let review: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match path {
            TOKEN_REVIEWS => {
                let token = review["spec"]["token"].as_str().unwrap_or_default();
                let status = match self.tokens.get(token) {
                    Some((user, groups)) => json!({
                        "authenticated": true,
                        "user": {"username": user, "groups": groups, "uid": format!("uid-{user}")},
                    }),
                    None => json!({"authenticated": false, "error": "invalid bearer token"}),
                };
                Some((201, with_status(review, status)))
            }
            ACCESS_REVIEWS => {
                let spec = &review["spec"];
                let key = (
                    spec["user"].as_str().unwrap_or_default().to_owned(),
                    spec["nonResourceAttributes"]["verb"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    spec["nonResourceAttributes"]["path"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                let allowed = self.grants.contains(&key);
                let status =
                    json!({"allowed": allowed, "reason": if allowed { "granted" } else { "" }});
                Some((201, with_status(review, status)))
            }
            _ => None,
        }
    }
}

fn with_status(mut review: Value, status: Value) -> Value {
    if let Some(object) = review.as_object_mut() {
        object.insert("status".into(), status);
    }
    review
}
