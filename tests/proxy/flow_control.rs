//! Flow control in router mode: with the only endpoint full, requests wait in the EPP, the
//! interactive objective overtakes waiting batch requests, and a client that hangs up
//! leaves the queue.

use std::time::{Duration, Instant};

use crate::{completion, eventually, http1, metric, simulated_with, url};

/// One simulated server, full at one in-flight request.
const CONFIG: &str = "apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
saturationDetector:
  type: concurrency
  maxConcurrency: 1
flowControl:
  requestTTL: 10s
";

async fn send(epp: &crate::TestEpp, objective: &str, delay: Duration) -> (u16, Instant) {
    tokio::time::sleep(delay).await;
    let response = http1()
        .post(url(epp, "/v1/completions"))
        .header("x-gateway-inference-objective", objective)
        .body(completion(objective, 12, false))
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    response.bytes().await.expect("body");
    (status, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_requests_overtake_waiting_batch_requests() {
    // 12 tokens at a 20 ms step: about 250 ms per request, one at a time.
    let epp = simulated_with(1, "--time-scale 1 --step-base-ms 20", CONFIG, |_| {}).await;
    epp.set_objective("chat", 10);
    epp.set_objective("batch", 0);
    let ms = Duration::from_millis;
    let (first, batch, chat) = tokio::join!(
        send(&epp, "batch", ms(0)),
        send(&epp, "batch", ms(60)),
        send(&epp, "chat", ms(100)),
    );
    assert_eq!([first.0, batch.0, chat.0], [200; 3]);
    assert!(
        first.1 < chat.1 && chat.1 < batch.1,
        "served first, chat, batch: chat after {:?}, batch after {:?}",
        chat.1.duration_since(first.1),
        batch.1.duration_since(first.1)
    );
    assert_eq!(
        metric(
            &epp,
            "inference_extension_flow_control_dispatches_total{priority=\"10\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_leaves_the_queue() {
    let epp = simulated_with(1, "--time-scale 1 --step-base-ms 20", CONFIG, |_| {}).await;
    let busy = tokio::spawn({
        let request = http1()
            .post(url(&epp, "/v1/completions"))
            .body(completion("long", 40, false));
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiting = tokio::spawn(
        http1()
            .post(url(&epp, "/v1/completions"))
            .body(completion("waits", 4, false))
            .send(),
    );
    let queued = "inference_extension_flow_control_queue_size{priority=\"0\"}";
    eventually("the second request waits", || metric(&epp, queued) == 1.0).await;
    waiting.abort();
    eventually("it left the queue", || metric(&epp, queued) == 0.0).await;
    assert_eq!(busy.await.expect("joined").expect("answered"), 200);
}
