//! Loopback ports for child processes (the `epp` binary, Envoy), which must be told a port
//! rather than bind port 0 themselves.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// How far [`free_port`] has moved from its start; [`free_port_run`] moves it past a run, so
/// that the run's later ports are not handed out again by this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A loopback port that is free now, taken below the kernel's ephemeral range so that no
/// outgoing connection (Envoy's, the clients') can occupy it before the child binds it.
/// Each test process starts at its own offset, so parallel runs rarely meet.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    let high = ephemeral_low().clamp(LOW + 1_000, 32_768);
    let span = high - LOW;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let Ok(port) = u16::try_from(LOW + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{high}");
}

/// The first of `count` consecutive loopback ports that are all free now, from the same range
/// as [`free_port`]: for servers that bind `base`, `base + 1`, … themselves (the simulators'
/// KV-event sockets, one per server).
pub fn free_port_run(count: u16) -> u16 {
    for _ in 0..200 {
        let base = free_port();
        let Some(last) = base.checked_add(count - 1) else {
            continue;
        };
        let held: Vec<TcpListener> = (base..=last)
            .filter_map(|port| TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if held.len() == usize::from(count) {
            NEXT.fetch_add(u32::from(count - 1), Ordering::Relaxed);
            return base;
        }
    }
    panic!("no run of {count} free loopback ports");
}

fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The three ports of an `epp` binary, free when taken.
#[derive(Debug, Clone, Copy)]
pub struct EppPorts {
    pub grpc: u16,
    pub health: u16,
    pub metrics: u16,
}

impl EppPorts {
    pub fn free() -> EppPorts {
        EppPorts {
            grpc: free_port(),
            health: free_port(),
            metrics: free_port(),
        }
    }

    /// `--grpc-port`, `--grpc-health-port` and `--metrics-port` with these ports.
    pub fn flags(&self) -> Vec<String> {
        [
            ("--grpc-port", self.grpc),
            ("--grpc-health-port", self.health),
            ("--metrics-port", self.metrics),
        ]
        .into_iter()
        .flat_map(|(flag, port)| [flag.to_owned(), port.to_string()])
        .collect()
    }
}
