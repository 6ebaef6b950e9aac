//! Request headers as received from the gateway, with lower-case names.

/// Header naming the InferenceObjective of a request.
pub const OBJECTIVE_HEADER: &str = "x-gateway-inference-objective";
/// Header carrying the flow-fairness id (read by flow control when the config trusts it).
pub const FAIRNESS_HEADER: &str = "x-gateway-inference-fairness-id";

/// The request's headers in arrival order. Names are lower-case (Envoy sends them so;
/// we lower-case defensively), values are the raw bytes as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    entries: Vec<(String, String)>,
}

impl RequestHeaders {
    pub fn new() -> Self {
        RequestHeaders::default()
    }

    /// Adds a header; `name` is lower-cased.
    pub fn push(&mut self, name: &str, value: String) {
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            name.to_ascii_lowercase()
        } else {
            name.to_owned()
        };
        self.entries.push((name, value));
    }

    /// The last value of header `name` (lower-case), as Go's map-of-headers keeps the last.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for RequestHeaders {
    fn from_iter<T: IntoIterator<Item = (&'a str, &'a str)>>(iter: T) -> Self {
        let mut headers = RequestHeaders::new();
        for (name, value) in iter {
            headers.push(name, value.to_owned());
        }
        headers
    }
}
