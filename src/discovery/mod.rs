//! Discovery: where the pool's endpoints come from (static list or file; Kubernetes later).

pub mod static_endpoints;
