//! The load loop, shared by every mode: a fixed number of workers each sending one request
//! after another (closed loop), or requests started on a schedule whatever the answers
//! (open loop), until a request count or a duration; with a progress line each second.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::histogram::format_micros;
pub use crate::stats::{ErrorKind, Sample, Stats};

/// How requests are started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Closed loop: this many requests in flight at all times.
    Concurrency(usize),
    /// Open loop: `per_second` starts per second; a start that would exceed
    /// `max_in_flight` is dropped and counted as the error `overload`.
    Rate {
        per_second: f64,
        arrival: Arrival,
        max_in_flight: usize,
    },
}

/// Gaps between open-loop starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Every `1/rate` seconds.
    Constant,
    /// Exponential gaps with mean `1/rate` (Poisson arrivals, as inference-perf sends).
    Poisson,
}

/// When a phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    Requests(u64),
    /// No new request starts after this long; those in flight finish.
    Duration(Duration),
}

/// Whether to print a progress line on stderr each second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Print,
    Quiet,
}

/// One phase of load against one target.
#[derive(Clone, Debug)]
pub struct Plan {
    pub shape: Shape,
    pub stop: StopAt,
    /// Per request; a request still running then counts as `timeout`.
    pub timeout: Duration,
    pub progress: Progress,
    /// Seeds the Poisson gaps.
    pub seed: u64,
}

/// One kind of request: ext_proc exchange or HTTP call.
pub trait Exchange: Send + Sync + 'static {
    /// Names of the timings in [`Sample::timings`]; the first is the headline latency.
    fn metrics(&self) -> &'static [&'static str];
    /// Sends request `index`. `start` is when it was due: in the open loop that can be
    /// earlier than now, so queueing in the tool counts (no coordinated omission).
    fn run(
        &self,
        index: u64,
        start: Instant,
    ) -> impl Future<Output = Result<Sample, ErrorKind>> + Send;
}

/// State the workers share with the progress printer.
struct Shared {
    stats: Mutex<Stats>,
    in_flight: AtomicUsize,
    next_index: AtomicU64,
}

impl Shared {
    fn record(&self, outcome: Result<Sample, ErrorKind>) {
        self.stats.lock().record(outcome);
    }
}

/// Runs one phase against `exchange`, with request indices from `first_index` on.
pub async fn run<E: Exchange>(
    exchange: Arc<E>,
    plan: &Plan,
    label: &str,
    first_index: u64,
) -> Stats {
    let shared = Arc::new(Shared {
        stats: Mutex::new(Stats::new(exchange.metrics())),
        in_flight: AtomicUsize::new(0),
        next_index: AtomicU64::new(first_index),
    });
    let started = Instant::now();
    let printer = (plan.progress == Progress::Print).then(|| {
        tokio::spawn(print_progress(
            Arc::clone(&shared),
            label.to_owned(),
            started,
        ))
    });
    match plan.shape {
        Shape::Concurrency(workers) => {
            closed_loop(&exchange, plan, &shared, workers, first_index).await
        }
        Shape::Rate {
            per_second,
            arrival,
            max_in_flight,
        } => {
            open_loop(
                &exchange,
                plan,
                &shared,
                per_second,
                arrival,
                max_in_flight,
                first_index,
            )
            .await;
        }
    }
    if let Some(printer) = printer {
        printer.abort();
    }
    let mut stats = shared.stats.lock().clone();
    stats.elapsed = started.elapsed();
    stats
}

/// Runs one request with the timeout and records it; the caller counted it in flight.
async fn one<E: Exchange>(
    exchange: &E,
    shared: &Shared,
    timeout: Duration,
    index: u64,
    start: Instant,
) {
    let outcome = match tokio::time::timeout(timeout, exchange.run(index, start)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ErrorKind::Timeout),
    };
    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    shared.record(outcome);
}

async fn closed_loop<E: Exchange>(
    exchange: &Arc<E>,
    plan: &Plan,
    shared: &Arc<Shared>,
    workers: usize,
    first_index: u64,
) {
    let deadline = stop_deadline(plan.stop);
    let last_index = match plan.stop {
        StopAt::Requests(count) => first_index.saturating_add(count),
        StopAt::Duration(_) => u64::MAX,
    };
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (exchange, shared, timeout) = (Arc::clone(exchange), Arc::clone(shared), plan.timeout);
        tasks.spawn(async move {
            loop {
                let index = shared.next_index.fetch_add(1, Ordering::Relaxed);
                if index >= last_index || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                shared.in_flight.fetch_add(1, Ordering::Relaxed);
                one(exchange.as_ref(), &shared, timeout, index, Instant::now()).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn open_loop<E: Exchange>(
    exchange: &Arc<E>,
    plan: &Plan,
    shared: &Arc<Shared>,
    per_second: f64,
    arrival: Arrival,
    max_in_flight: usize,
    first_index: u64,
) {
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let deadline = stop_deadline(plan.stop);
    let mut due = Instant::now();
    let mut tasks = JoinSet::new();
    for sent in 0u64.. {
        if matches!(plan.stop, StopAt::Requests(count) if sent >= count)
            || deadline.is_some_and(|d| due >= d)
        {
            break;
        }
        tokio::time::sleep_until(due).await;
        while tasks.try_join_next().is_some() {}
        let index = first_index + sent;
        if shared.in_flight.load(Ordering::Relaxed) >= max_in_flight {
            shared.record(Err(ErrorKind::Overload));
        } else {
            // Counted before the task runs, so a burst of starts sees its own load.
            shared.in_flight.fetch_add(1, Ordering::Relaxed);
            let (exchange, shared, timeout) =
                (Arc::clone(exchange), Arc::clone(shared), plan.timeout);
            let start = due;
            tasks
                .spawn(async move { one(exchange.as_ref(), &shared, timeout, index, start).await });
        }
        due += gap(&mut rng, per_second, arrival);
    }
    while tasks.join_next().await.is_some() {}
}

fn stop_deadline(stop: StopAt) -> Option<Instant> {
    match stop {
        StopAt::Requests(_) => None,
        StopAt::Duration(duration) => Some(Instant::now() + duration),
    }
}

/// The wait before the next open-loop start.
fn gap(rng: &mut SmallRng, per_second: f64, arrival: Arrival) -> Duration {
    let mean = 1.0 / per_second;
    let seconds = match arrival {
        Arrival::Constant => mean,
        // Inverse transform of U in (0, 1]: never ln(0).
        Arrival::Poisson => -mean * (1.0 - rng.random::<f64>()).ln(),
    };
    Duration::from_secs_f64(seconds)
}

/// Prints `label  3s  12345 ok  4100/s  0 errors  16 in flight  p50 1.21ms  p99 3.40ms`.
async fn print_progress(shared: Arc<Shared>, label: String, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last_ok = 0;
    loop {
        tick.tick().await;
        let (ok, errors, headline) = {
            let stats = shared.stats.lock();
            let headline = stats.metrics.first().map(|(name, h)| (*name, h.summary()));
            (stats.ok, stats.error_count(), headline)
        };
        let latency = headline.map_or_else(String::new, |(name, s)| {
            format!(
                "  {name} p50 {}  p99 {}",
                format_micros(s.p50_us),
                format_micros(s.p99_us)
            )
        });
        eprintln!(
            "{label}  {:>3}s  {ok} ok  {}/s  {errors} errors  {} in flight{latency}",
            started.elapsed().as_secs(),
            ok - last_ok,
            shared.in_flight.load(Ordering::Relaxed),
        );
        last_ok = ok;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Succeeds after `delay`, except every `fail_every`-th request.
    struct Fake {
        delay: Duration,
        fail_every: u64,
    }

    impl Exchange for Fake {
        fn metrics(&self) -> &'static [&'static str] {
            &["total"]
        }

        async fn run(&self, index: u64, start: Instant) -> Result<Sample, ErrorKind> {
            tokio::time::sleep(self.delay).await;
            if self.fail_every > 0 && index.is_multiple_of(self.fail_every) {
                return Err(ErrorKind::Http(503));
            }
            Ok(Sample {
                timings: vec![start.elapsed()],
                destination: Some(format!("e{}", index % 2)),
                group: Some(usize::try_from(index % 4).expect("small")),
            })
        }
    }

    fn plan(shape: Shape, stop: StopAt) -> Plan {
        Plan {
            shape,
            stop,
            timeout: Duration::from_secs(5),
            progress: Progress::Quiet,
            seed: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_runs_the_count_with_errors_by_kind() {
        let fake = Arc::new(Fake {
            delay: Duration::from_millis(10),
            fail_every: 5,
        });
        let stats = run(
            fake,
            &plan(Shape::Concurrency(4), StopAt::Requests(100)),
            "t",
            0,
        )
        .await;
        assert_eq!(stats.ok, 80);
        assert_eq!(stats.errors.get("http:503"), Some(&20));
        assert_eq!(stats.destinations.values().sum::<u64>(), 80);
        // Groups 0 and 2 always go to e0, groups 1 and 3 to e1.
        assert_eq!(stats.group_affinity(), Some(1.0));
        // 100 requests of 10 ms, 4 at a time.
        assert_eq!(stats.elapsed, Duration::from_millis(250));
        assert!(stats.metrics[0].1.summary().p50_us.abs_diff(10_000) <= 10);
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_keeps_the_rate_and_sheds_overload() {
        let fake = Arc::new(Fake {
            delay: Duration::from_millis(100),
            fail_every: 0,
        });
        let rate = Shape::Rate {
            per_second: 100.0,
            arrival: Arrival::Constant,
            max_in_flight: 5,
        };
        let stats = run(fake, &plan(rate, StopAt::Requests(50)), "t", 0).await;
        // 10 ms apart, 100 ms each: about 10 would be in flight, only 5 may be.
        assert!(stats.ok >= 20 && stats.ok <= 30, "{}", stats.ok);
        assert_eq!(
            stats.ok + stats.errors.get("overload").copied().unwrap_or(0),
            50
        );
    }

    #[tokio::test(start_paused = true)]
    async fn duration_stops_starting_and_timeouts_count() {
        let fake = Arc::new(Fake {
            delay: Duration::from_secs(10),
            fail_every: 0,
        });
        let mut p = plan(
            Shape::Concurrency(2),
            StopAt::Duration(Duration::from_secs(1)),
        );
        p.timeout = Duration::from_millis(400);
        let stats = run(fake, &p, "t", 0).await;
        // Each worker times out at 0.4 s and 0.8 s, then starts one more at 0.8 s that ends at 1.2 s.
        assert_eq!(stats.errors.get("timeout"), Some(&6));
        assert_eq!(stats.ok, 0);
    }

    #[test]
    fn poisson_gaps_average_the_rate() {
        let mut rng = SmallRng::seed_from_u64(3);
        let total: f64 = (0..20_000)
            .map(|_| gap(&mut rng, 50.0, Arrival::Poisson).as_secs_f64())
            .sum();
        assert!((total / 20_000.0 - 0.02).abs() < 0.001, "{total}");
        assert_eq!(
            gap(&mut rng, 4.0, Arrival::Constant),
            Duration::from_millis(250)
        );
    }
}
