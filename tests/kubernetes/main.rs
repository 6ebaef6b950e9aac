//! Kubernetes discovery end to end: the real kube-rs watchers and leader election of the
//! EPP against an in-process fake API server speaking the list/watch protocol.

epp_testkit::loopback_epp!();

mod leader_election;
mod objectives;
mod pool_and_pods;
mod resilience;
