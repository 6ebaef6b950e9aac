//! Kubernetes discovery: the InferencePool, its pods and its InferenceObjectives, watched
//! with kube-rs, and leader election.

pub mod resources;
