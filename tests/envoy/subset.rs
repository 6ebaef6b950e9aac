//! The gateway's subset hint (`envoy.lb.subset_hint` / `x-gateway-destination-endpoint-subset`
//! in the request's dynamic metadata, set by subset-hint.yaml to simulators 0 and 1)
//! restricts the EPP's pick, for requests with and without a body.

use crate::client::{assert_routed, completion};
use crate::harness::{Setup, TEST_TIMEOUT, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subset_hint_restricts_the_pick() {
    let stack = Setup::new("subset-hint.yaml").start().await;
    within(TEST_TIMEOUT, async {
        let mut served = [0; 3];
        for n in 0..30 {
            let body = completion(&format!("subset request {n}"), 1);
            let reply = stack
                .http
                .post(&stack.url("/v1/completions"), &body, &[])
                .await;
            served[stack.sim_index(assert_routed(&reply))] += 1;
        }
        for _ in 0..10 {
            let reply = stack.http.get(&stack.url("/v1/models"), &[]).await;
            served[stack.sim_index(assert_routed(&reply))] += 1;
        }
        assert_eq!(served[2], 0, "simulator 2 is outside the hint: {served:?}");
    })
    .await;
}
