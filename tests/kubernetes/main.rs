//! Kubernetes discovery end to end: the real kube-rs watchers and leader election of the
//! EPP against an in-process fake API server speaking the list/watch protocol.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/fake_apiserver/mod.rs"]
mod fake_apiserver;

mod harness;
mod leader_election;
mod objectives;
mod pool_and_pods;
mod resilience;
