//! Request parsing: headers, the OpenAI body (model, prompt), and the model rewrite.

mod body;
mod headers;

pub use body::{
    BodyError, BodyPrefix, ParsedBody, parse_body, parse_body_prefix, replace_model_value,
    rewrite_model,
};
pub use headers::{FAIRNESS_HEADER, OBJECTIVE_HEADER, RequestHeaders};
