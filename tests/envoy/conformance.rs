//! Upstream conformance `GatewayFollowingEPPRouting`: with the `header-based-testing-filter`
//! config, 100 requests at concurrency 10 naming 1, 2 or 3 endpoints in
//! `test-epp-endpoint-selection` land only on those endpoints.

use futures_util::StreamExt;

use crate::client::{SELECT, assert_routed, completion};
use crate::harness::{Setup, Stack, TEST_TIMEOUT, within};

const REQUESTS: usize = 100;
const CONCURRENCY: usize = 10;

/// Sends the requests selecting `selected` (simulator indexes); returns how many each
/// simulator served.
async fn send_selecting(stack: &Stack, selected: &[usize]) -> Vec<usize> {
    let header: Vec<String> = selected.iter().map(|&i| stack.sims.address(i)).collect();
    let header = header.join(",");
    let ports: Vec<u16> = futures_util::stream::iter(0..REQUESTS)
        .map(|n| {
            let body = completion(&format!("conformance request {n}"), 1);
            let header = header.clone();
            async move {
                let reply = stack
                    .http
                    .post(&stack.url("/v1/completions"), &body, &[(SELECT, &header)])
                    .await;
                assert_routed(&reply)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut served = vec![0; stack.sims.ports.len()];
    for port in ports {
        served[stack.sim_index(port)] += 1;
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_land_only_on_the_selected_endpoints() {
    let stack = Setup::new("full-duplex.yaml")
        .servers(4)
        .plugins("conformance-plugins.yaml")
        .start()
        .await;
    within(TEST_TIMEOUT, async {
        for selected in [&[2][..], &[0, 3], &[1, 2, 3]] {
            let served = send_selecting(&stack, selected).await;
            for (i, &count) in served.iter().enumerate() {
                match selected.contains(&i) {
                    // Ties are broken at random: every selected endpoint gets some.
                    true => assert!(count > 0, "selected {selected:?}, served {served:?}"),
                    false => assert_eq!(count, 0, "selected {selected:?}, served {served:?}"),
                }
            }
        }
    })
    .await;
}
