//! Request parsing: headers, the OpenAI body (model, prompt), and the model rewrite.

mod body;
mod headers;

pub use body::{BodyError, ParsedBody, parse_body, rewrite_model};
pub use headers::RequestHeaders;
