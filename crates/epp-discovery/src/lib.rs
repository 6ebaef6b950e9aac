//! Discovery: where the pool's endpoints come from (Kubernetes, a static list, or a file).

pub mod kube;
pub mod objectives_file;
pub mod static_endpoints;
pub mod watched_file;
