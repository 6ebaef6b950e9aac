//! Client-sized routing hints are bounded (issue 11, item 9): a subset hint is read up to
//! `MAX_SUBSET_ENTRIES` entries; past that, entries are ignored, never routed to.

use epp_core::director::MAX_SUBSET_ENTRIES;
use epp_testkit::driver::{MODES, Outcome, Request, send_request};
use epp_testkit::messages::completion_body;
use epp_testkit::{HERMETIC_CONFIG, metrics};

use crate::TestEpp;

const PODS: [&str; 2] = ["10.0.0.1:8000", "10.0.0.2:8000"];

/// `misses` addresses outside the pool, then `10.0.0.2:8000`.
fn hint(misses: usize) -> Vec<String> {
    let mut hint: Vec<String> = (0..misses)
        .map(|i| format!("172.16.{}.{}:8000", i / 256, i % 256))
        .collect();
    hint.push("10.0.0.2:8000".into());
    hint
}

#[tokio::test]
async fn a_subset_hint_is_read_up_to_its_limit() {
    let epp = TestEpp::start(&PODS, HERMETIC_CONFIG).await;
    for pod in PODS {
        epp.set_metrics(pod, metrics(0, 0.1, &[]));
    }
    let at_limit = hint(MAX_SUBSET_ENTRIES - 1);
    let past_limit = hint(MAX_SUBSET_ENTRIES);
    for mode in MODES {
        // The pool endpoint is the last entry read: it is the only candidate.
        let entries: Vec<&str> = at_limit.iter().map(String::as_str).collect();
        let request = Request::new(&[], completion_body("m", "p")).subset(&entries);
        let mut stream = epp.stream().await;
        let outcome = send_request(&mut stream, mode, &request).await;
        assert_eq!(outcome.destination(), "10.0.0.2:8000", "{mode:?}");
        // One entry further it is cut: no candidate is left, and nothing outside the
        // hint is picked instead.
        let entries: Vec<&str> = past_limit.iter().map(String::as_str).collect();
        let request = Request::new(&[], completion_body("m", "p")).subset(&entries);
        let mut stream = epp.stream().await;
        let outcome = send_request(&mut stream, mode, &request).await;
        assert!(
            matches!(outcome, Outcome::Rejected(503, _)),
            "{mode:?}: {outcome:?}"
        );
    }
}
