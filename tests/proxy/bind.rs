//! `--bind-address` and the per-listener overrides: each listener binds the address it is
//! given, and only that one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{CONFIG, TestEpp, router_mode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_bind_the_given_addresses() {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let epp = TestEpp::start_with(&["127.0.0.1:1"], CONFIG, |o| {
        router_mode(o);
        o.bind_address = loopback;
    })
    .await;
    let running = &epp.running;
    let proxy = running.proxy_address.expect("router mode is on");
    for address in [
        running.ext_proc_address,
        running.health_address,
        running.metrics_address,
        proxy,
    ] {
        assert_eq!(address.ip(), loopback, "{address}");
    }
    // Bound to 127.0.0.1 only: the same port on another loopback address is refused.
    let other = std::net::SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), proxy.port());
    assert!(
        tokio::net::TcpStream::connect(other).await.is_err(),
        "{other} must refuse"
    );
    assert!(tokio::net::TcpStream::connect(proxy).await.is_ok());

    // Per-listener overrides win over --bind-address; IPv6 literals work where the host has
    // IPv6 loopback.
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let metrics_ip = if ipv6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        loopback
    };
    let epp = TestEpp::start_with(&["127.0.0.1:1"], CONFIG, |o| {
        router_mode(o);
        o.bind_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        o.grpc_bind_address = Some(loopback);
        o.metrics_bind_address = Some(metrics_ip);
        o.proxy_bind_address = Some(loopback);
    })
    .await;
    assert_eq!(epp.running.ext_proc_address.ip(), loopback);
    assert_eq!(epp.running.metrics_address.ip(), metrics_ip);
    assert_eq!(
        epp.running.health_address.ip(),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    );
    assert_eq!(epp.running.proxy_address.map(|a| a.ip()), Some(loopback));
}
