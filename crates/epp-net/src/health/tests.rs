//! Tests of the health service through a real tonic server and client.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};

use super::pb::health_client::HealthClient;
use super::pb::{HealthCheckRequest, HealthListRequest};
use super::*;

/// Serves `server` on 127.0.0.1:0 and returns a connected client.
async fn serve(
    server: health_server::HealthServer<HealthService>,
) -> (HealthClient<Channel>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(server)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let client = HealthClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    (client, addr)
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    response.status()
}

use ServingStatus::{NotServing, ServiceUnknown, Serving};

/// A health state with the sync flag that the datastore holds in production.
pub(crate) struct TestHealth {
    state: HealthState,
    synced: watch::Sender<bool>,
}

impl TestHealth {
    pub(crate) fn new(ha_enabled: bool) -> Self {
        let synced = watch::Sender::new(false);
        TestHealth {
            state: HealthState::new(ha_enabled, synced.subscribe()),
            synced,
        }
    }

    pub(crate) fn set_synced(&self, synced: bool) {
        self.synced.send_replace(synced);
    }
}

impl std::ops::Deref for TestHealth {
    type Target = HealthState;
    fn deref(&self) -> &HealthState {
        &self.state
    }
}

#[tokio::test]
async fn check_table_health_port() {
    let state = TestHealth::new(false);
    let ha_state = TestHealth::new(true);
    let (mut client, _) = serve(health_server(state.clone())).await;
    let (mut ha_client, _) = serve(health_server(ha_state.clone())).await;

    // (ha, synced, leader, draining, service, expected)
    let any_names = ["", "inference-extension", EXT_PROC_SERVICE, "liveness", "x"];
    let mut cases: Vec<(bool, bool, bool, bool, &str, ServingStatus)> = Vec::new();
    for name in any_names {
        // Leader election off: any name, by sync only; leader is ignored.
        for leader in [false, true] {
            cases.push((false, false, leader, false, name, NotServing));
            cases.push((false, true, leader, false, name, Serving));
        }
    }
    for (synced, leader) in [(false, false), (true, false), (false, true), (true, true)] {
        let ready = if synced && leader {
            Serving
        } else {
            NotServing
        };
        cases.push((true, synced, leader, false, LIVENESS_SERVICE, Serving));
        cases.push((true, synced, leader, false, READINESS_SERVICE, ready));
        cases.push((true, synced, leader, false, "", ready));
        cases.push((true, synced, leader, false, EXT_PROC_SERVICE, ready));
        cases.push((
            true,
            synced,
            leader,
            false,
            "inference-extension",
            ServiceUnknown,
        ));
        cases.push((true, synced, leader, false, "Readiness", ServiceUnknown));
    }
    // Draining (ordered last: it is irreversible).
    for name in any_names {
        cases.push((false, true, true, true, name, NotServing));
    }
    cases.push((true, true, true, true, LIVENESS_SERVICE, Serving));
    cases.push((true, true, true, true, READINESS_SERVICE, NotServing));
    cases.push((true, true, true, true, "", NotServing));
    cases.push((true, true, true, true, EXT_PROC_SERVICE, NotServing));
    cases.push((true, true, true, true, "other", ServiceUnknown));

    for (ha, synced, leader, draining, service, expected) in cases {
        let (state, client) = if ha {
            (&ha_state, &mut ha_client)
        } else {
            (&state, &mut client)
        };
        state.set_synced(synced);
        state.set_leader(leader);
        if draining {
            state.set_draining();
        }
        assert_eq!(
            state.status(service),
            expected,
            "status(): ha={ha} synced={synced} leader={leader} draining={draining} service={service:?}"
        );
        assert_eq!(
            check(client, service).await,
            expected,
            "Check: ha={ha} synced={synced} leader={leader} draining={draining} service={service:?}"
        );
    }
}

#[tokio::test]
async fn check_table_ext_proc_port() {
    for ha in [false, true] {
        let state = TestHealth::new(ha);
        let (mut client, _) = serve(ext_proc_health_server(state.clone())).await;
        for name in ["", EXT_PROC_SERVICE] {
            assert_eq!(check(&mut client, name).await, NotServing);
        }
        state.set_synced(true);
        let expected = if ha { NotServing } else { Serving };
        assert_eq!(
            check(&mut client, EXT_PROC_SERVICE).await,
            expected,
            "ha={ha}"
        );
        state.set_leader(true);
        for name in ["", EXT_PROC_SERVICE] {
            assert_eq!(check(&mut client, name).await, Serving, "ha={ha} {name:?}");
        }
        for name in ["liveness", "readiness", "inference-extension"] {
            assert_eq!(check(&mut client, name).await, ServiceUnknown, "{name}");
        }
        state.set_draining();
        assert_eq!(check(&mut client, EXT_PROC_SERVICE).await, NotServing);
    }
}

async fn list(client: &mut HealthClient<Channel>) -> Vec<(String, ServingStatus)> {
    let mut statuses: Vec<_> = client
        .list(HealthListRequest {})
        .await
        .unwrap()
        .into_inner()
        .statuses
        .into_iter()
        .map(|(name, response)| (name, response.status()))
        .collect();
    statuses.sort();
    statuses
}

#[tokio::test]
async fn list_contents() {
    let state = TestHealth::new(false);
    let (mut client, _) = serve(health_server(state.clone())).await;
    assert_eq!(
        list(&mut client).await,
        vec![(EXT_PROC_SERVICE.to_owned(), NotServing)]
    );
    state.set_synced(true);
    assert_eq!(
        list(&mut client).await,
        vec![(EXT_PROC_SERVICE.to_owned(), Serving)]
    );

    let ha = TestHealth::new(true);
    let (mut client, _) = serve(health_server(ha.clone())).await;
    ha.set_synced(true);
    assert_eq!(
        list(&mut client).await,
        vec![
            (EXT_PROC_SERVICE.to_owned(), NotServing),
            (LIVENESS_SERVICE.to_owned(), Serving),
            (READINESS_SERVICE.to_owned(), NotServing),
        ]
    );
    ha.set_leader(true);
    assert_eq!(
        list(&mut client).await,
        vec![
            (EXT_PROC_SERVICE.to_owned(), Serving),
            (LIVENESS_SERVICE.to_owned(), Serving),
            (READINESS_SERVICE.to_owned(), Serving),
        ]
    );

    let (mut client, _) = serve(ext_proc_health_server(ha.clone())).await;
    assert_eq!(
        list(&mut client).await,
        vec![
            (String::new(), Serving),
            (EXT_PROC_SERVICE.to_owned(), Serving),
        ]
    );
}

const STEP: Duration = Duration::from_secs(5);

#[tokio::test]
async fn watch_sends_current_status_then_changes() {
    let state = TestHealth::new(true);
    let (mut client, _) = serve(health_server(state.clone())).await;
    let mut stream = client
        .watch(HealthCheckRequest {
            service: READINESS_SERVICE.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(STEP, stream.next())
            .await
            .expect("watch update in time")
            .expect("stream open")
            .unwrap()
            .status()
    };
    assert_eq!(next().await, NotServing);
    // A change that does not alter readiness sends nothing...
    state.set_synced(true);
    // ...the one that does is sent.
    state.set_leader(true);
    assert_eq!(next().await, Serving);
    state.set_leader(false);
    assert_eq!(next().await, NotServing);
    state.set_leader(true);
    assert_eq!(next().await, Serving);
    state.set_draining();
    assert_eq!(next().await, NotServing);
    // Shutdown ends the stream.
    state.shutdown();
    let end = tokio::time::timeout(STEP, stream.next()).await.unwrap();
    assert!(end.is_none(), "stream ends on shutdown: {end:?}");
}

#[tokio::test]
async fn watch_unknown_service_and_liveness() {
    let state = TestHealth::new(true);
    let (mut client, _) = serve(health_server(state.clone())).await;
    let mut unknown = client
        .watch(HealthCheckRequest {
            service: "nope".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = unknown.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServiceUnknown);

    let mut liveness = client
        .watch(HealthCheckRequest {
            service: LIVENESS_SERVICE.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(liveness.next().await.unwrap().unwrap().status(), Serving);
    state.set_draining();
    // Liveness does not change on draining: nothing more arrives.
    let more = tokio::time::timeout(Duration::from_millis(200), liveness.next()).await;
    assert!(more.is_err(), "no update expected: {more:?}");
}

#[tokio::test]
async fn watch_ends_when_client_goes_away() {
    let state = TestHealth::new(false);
    let (mut client, _) = serve(health_server(state.clone())).await;
    let mut stream = client
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.next().await.unwrap().unwrap().status(), NotServing);
    assert_eq!(state.inner.changed.receiver_count(), 1);
    drop(stream);
    drop(client);
    // The server drops the watcher (and its receiver) once the stream is cancelled.
    tokio::time::timeout(STEP, async {
        while state.inner.changed.receiver_count() != 0 {
            state.set_synced(!state.is_synced());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("watcher dropped after client went away");
}
