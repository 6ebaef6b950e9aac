//! The waiting room: requests held while the pool is saturated, in priority bands, with
//! fairness between flows inside a band.
//!
//! - **Bands** are keyed by priority; dispatch is strict (a lower band waits while a higher
//!   one has anything).
//! - **Flows** inside a band take turns (round robin); a flow is the fairness id the
//!   gateway vouches for, or the objective.
//! - **Inside a flow** requests leave first come, first served, or earliest deadline first.
//! - **Limits**: each band and the whole room are bounded in requests and bytes. A request
//!   that would pass the room's limit displaces the newest request of the heaviest flow of
//!   the lowest band below its own priority (sheddable traffic goes first); with no such
//!   band, or when its own band is full, it is refused.
//! - **Time to live**: a request still waiting at its expiry leaves with
//!   [`Rejection::Expired`].
//!
//! Pure and clock-free: `now` is passed in, so the EPP (wall clock) and the lab (virtual
//! time) drive the same code. The payload `T` is what the caller needs to answer the
//! request (a channel in the EPP, an id in the lab).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

/// Why a request left the waiting room without being dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Its band is at its request or byte limit.
    BandFull,
    /// The room is at its limit and nothing of lower priority could make space.
    QueueFull,
    /// A request of higher priority took its place.
    Displaced,
    /// It waited longer than its time to live.
    Expired,
}

impl Rejection {
    /// The metric label and reason header value.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::BandFull => "band_full",
            Rejection::QueueFull => "queue_full",
            Rejection::Displaced => "displaced",
            Rejection::Expired => "expired",
        }
    }
}

/// Order inside one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// First come, first served.
    #[default]
    Fcfs,
    /// Earliest deadline first; requests without a deadline sort by arrival after those with one.
    Edf,
}

/// A bound in requests and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests: usize,
    pub bytes: u64,
}

impl Limits {
    fn admits(&self, requests: usize, bytes: u64) -> bool {
        requests <= self.requests && bytes <= self.bytes
    }
}

/// How the waiting room is bounded and ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The whole room.
    pub total: Limits,
    /// Each band.
    pub per_band: Limits,
    /// How long a request may wait.
    pub ttl: Duration,
    pub ordering: Ordering,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            total: Limits {
                requests: 10_000,
                bytes: 1 << 30,
            },
            per_band: Limits {
                requests: 10_000,
                bytes: 1 << 30,
            },
            ttl: Duration::from_secs(30),
            ordering: Ordering::Fcfs,
        }
    }
}

/// Names one waiting request (stale once it left: [`FlowQueues::cancel`] then finds nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket {
    slot: u32,
    generation: u32,
}

/// What a new request brings to the room.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    pub priority: i32,
    pub flow: &'a str,
    /// Its request body, counted against the byte limits.
    pub bytes: u64,
    /// For [`Ordering::Edf`]: when it should be served by (on the caller's clock).
    pub deadline: Option<Duration>,
}

/// A request that leaves the room to be routed.
#[derive(Debug)]
pub struct Dispatched<T> {
    pub payload: T,
    pub priority: i32,
    /// How long it waited.
    pub waited: Duration,
}

/// A request that leaves without being routed.
#[derive(Debug)]
pub struct Refused<T> {
    pub payload: T,
    pub priority: i32,
    pub reason: Rejection,
    pub waited: Duration,
}

/// Size of one band, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandStats {
    pub priority: i32,
    pub requests: usize,
    pub bytes: u64,
    pub flows: usize,
}

struct Slot<T> {
    generation: u32,
    entry: Option<Entry<T>>,
}

struct Entry<T> {
    payload: T,
    priority: i32,
    flow: u32,
    bytes: u64,
    arrived_at: Duration,
}

/// One flow of one band: its requests in arrival order (tickets of requests that left by
/// another way stay until they reach the front) and, with EDF, by deadline.
#[derive(Default)]
struct Flow {
    name: Box<str>,
    arrivals: VecDeque<Ticket>,
    by_deadline: BinaryHeap<Reverse<(Duration, u64, Ticket)>>,
    live: usize,
}

#[derive(Default)]
struct Band {
    flows: HashMap<u32, Flow>,
    flow_ids: HashMap<Box<str>, u32>,
    /// Flows with waiting requests, in turn order.
    turns: VecDeque<u32>,
    requests: usize,
    bytes: u64,
}

/// Bands of flows of waiting requests; see the module docs.
pub struct FlowQueues<T> {
    config: QueueConfig,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// Highest priority last (`BTreeMap` order), so dispatch reads from the back.
    bands: BTreeMap<i32, Band>,
    expiries: BinaryHeap<Reverse<(Duration, Ticket)>>,
    next_flow: u32,
    arrivals: u64,
    requests: usize,
    bytes: u64,
}

impl<T> FlowQueues<T> {
    pub fn new(config: QueueConfig) -> Self {
        FlowQueues {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            bands: BTreeMap::new(),
            expiries: BinaryHeap::new(),
            next_flow: 0,
            arrivals: 0,
            requests: 0,
            bytes: 0,
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.requests
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    /// Body bytes of the requests waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Every band with waiting requests, highest priority first.
    pub fn bands(&self) -> impl Iterator<Item = BandStats> + '_ {
        self.bands
            .iter()
            .rev()
            .filter(|(_, band)| band.requests > 0)
            .map(|(&priority, band)| BandStats {
                priority,
                requests: band.requests,
                bytes: band.bytes,
                flows: band.turns.len(),
            })
    }

    /// Adds a request. `Ok` gives its ticket and the requests it displaced (to be answered
    /// with [`Rejection::Displaced`]); `Err` gives the payload back with the reason.
    #[allow(clippy::type_complexity)]
    pub fn enqueue(
        &mut self,
        arrival: Arrival<'_>,
        payload: T,
        now: Duration,
    ) -> Result<(Ticket, Vec<Refused<T>>), (T, Rejection)> {
        let band = self.bands.get(&arrival.priority);
        let (band_requests, band_bytes) = band.map_or((0, 0), |b| (b.requests, b.bytes));
        if !self
            .config
            .per_band
            .admits(band_requests + 1, band_bytes.saturating_add(arrival.bytes))
        {
            return Err((payload, Rejection::BandFull));
        }
        let displaced = match self.make_room(arrival.priority, arrival.bytes, now) {
            Some(displaced) => displaced,
            None => return Err((payload, Rejection::QueueFull)),
        };
        let ticket = self.store(Entry {
            payload,
            priority: arrival.priority,
            flow: 0,
            bytes: arrival.bytes,
            arrived_at: now,
        });
        self.arrivals += 1;
        let sequence = self.arrivals;
        let band = self.bands.entry(arrival.priority).or_default();
        let flow_id = match band.flow_ids.get(arrival.flow) {
            Some(&id) => id,
            None => {
                let id = self.next_flow;
                self.next_flow = self.next_flow.wrapping_add(1);
                band.flow_ids.insert(arrival.flow.into(), id);
                band.flows.insert(
                    id,
                    Flow {
                        name: arrival.flow.into(),
                        ..Flow::default()
                    },
                );
                id
            }
        };
        let flow = band.flows.get_mut(&flow_id).expect("flow just found");
        if flow.live == 0 {
            band.turns.push_back(flow_id);
        }
        flow.live += 1;
        flow.arrivals.push_back(ticket);
        if self.config.ordering == Ordering::Edf {
            let deadline = arrival.deadline.unwrap_or(Duration::MAX);
            flow.by_deadline.push(Reverse((deadline, sequence, ticket)));
        }
        band.requests += 1;
        band.bytes = band.bytes.saturating_add(arrival.bytes);
        self.requests += 1;
        self.bytes = self.bytes.saturating_add(arrival.bytes);
        if let Some(entry) = self.entry_mut(ticket) {
            entry.flow = flow_id;
        }
        self.expiries
            .push(Reverse((now.saturating_add(self.config.ttl), ticket)));
        Ok((ticket, displaced))
    }

    /// The next request to route: highest band, next flow's turn, that flow's first.
    pub fn dispatch(&mut self, now: Duration) -> Option<Dispatched<T>> {
        let (&priority, band) = self.bands.iter_mut().rev().find(|(_, b)| b.requests > 0)?;
        let flow_id = *band.turns.front()?;
        let flow = band.flows.get_mut(&flow_id)?;
        let ticket = next_live(flow, self.config.ordering, &self.slots)?;
        band.turns.rotate_left(1);
        let entry = self.remove(ticket)?;
        Some(Dispatched {
            waited: now.saturating_sub(entry.arrived_at),
            payload: entry.payload,
            priority,
        })
    }

    /// Requests whose time to live ended by `now`.
    pub fn expire(&mut self, now: Duration) -> Vec<Refused<T>> {
        let mut expired = Vec::new();
        while let Some(&Reverse((at, ticket))) = self.expiries.peek() {
            if at > now {
                break;
            }
            self.expiries.pop();
            if let Some(entry) = self.remove(ticket) {
                expired.push(refused(entry, Rejection::Expired, now));
            }
        }
        expired
    }

    /// Takes a request out (its client left); `None` if it already left.
    pub fn cancel(&mut self, ticket: Ticket) -> Option<T> {
        self.remove(ticket).map(|entry| entry.payload)
    }

    /// The earliest expiry among waiting requests (a dispatcher's next wake-up).
    pub fn next_expiry(&mut self) -> Option<Duration> {
        while let Some(&Reverse((at, ticket))) = self.expiries.peek() {
            if self.entry(ticket).is_some() {
                return Some(at);
            }
            self.expiries.pop();
        }
        None
    }

    // === room ===

    /// Displaces lower-priority requests until one of `bytes` fits the room; `None` when it
    /// cannot fit (nothing is displaced then).
    fn make_room(&mut self, priority: i32, bytes: u64, now: Duration) -> Option<Vec<Refused<T>>> {
        let fits = |requests: usize, used: u64, total: &Limits| {
            total.admits(requests + 1, used.saturating_add(bytes))
        };
        if fits(self.requests, self.bytes, &self.config.total) {
            return Some(Vec::new());
        }
        // Check that displacing everything below could make room before displacing anything.
        let (mut requests, mut used) = (self.requests, self.bytes);
        for (_, band) in self.bands.range(..priority) {
            requests -= band.requests;
            used -= band.bytes;
        }
        if !fits(requests, used, &self.config.total) {
            return None;
        }
        let mut displaced = Vec::new();
        while !fits(self.requests, self.bytes, &self.config.total) {
            let ticket = self.newest_of_heaviest_flow_below(priority)?;
            let entry = self.remove(ticket)?;
            displaced.push(refused(entry, Rejection::Displaced, now));
        }
        Some(displaced)
    }

    fn newest_of_heaviest_flow_below(&mut self, priority: i32) -> Option<Ticket> {
        let band = self
            .bands
            .range_mut(..priority)
            .find(|(_, band)| band.requests > 0)?
            .1;
        let flow = band.flows.values_mut().max_by_key(|flow| flow.live)?;
        while let Some(ticket) = flow.arrivals.pop_back() {
            if is_live(&self.slots, ticket) {
                return Some(ticket);
            }
        }
        None
    }

    // === slots ===

    fn store(&mut self, entry: Entry<T>) -> Ticket {
        match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.entry = Some(entry);
                Ticket {
                    slot,
                    generation: s.generation,
                }
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 waiting");
                self.slots.push(Slot {
                    generation: 0,
                    entry: Some(entry),
                });
                Ticket {
                    slot,
                    generation: 0,
                }
            }
        }
    }

    fn entry(&self, ticket: Ticket) -> Option<&Entry<T>> {
        let slot = self.slots.get(ticket.slot as usize)?;
        (slot.generation == ticket.generation)
            .then_some(slot.entry.as_ref())
            .flatten()
    }

    fn entry_mut(&mut self, ticket: Ticket) -> Option<&mut Entry<T>> {
        let slot = self.slots.get_mut(ticket.slot as usize)?;
        (slot.generation == ticket.generation)
            .then_some(slot.entry.as_mut())
            .flatten()
    }

    /// Frees a request's slot and takes it off its band's and flow's counts. Its tickets in
    /// the flow's queues and the expiry heap go stale and are skipped later.
    fn remove(&mut self, ticket: Ticket) -> Option<Entry<T>> {
        let slot = self.slots.get_mut(ticket.slot as usize)?;
        if slot.generation != ticket.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(ticket.slot);
        self.requests -= 1;
        self.bytes -= entry.bytes;
        if let Some(band) = self.bands.get_mut(&entry.priority) {
            band.requests -= 1;
            band.bytes -= entry.bytes;
            if let Some(flow) = band.flows.get_mut(&entry.flow) {
                flow.live -= 1;
                if flow.arrivals.len() > 2 * flow.live + STALE_SLACK {
                    compact(flow, &self.slots);
                }
                if flow.live == 0 {
                    // Forget the flow: memory follows what waits, not how many flows came.
                    band.turns.retain(|&id| id != entry.flow);
                    if let Some(flow) = band.flows.remove(&entry.flow) {
                        band.flow_ids.remove(&flow.name);
                    }
                }
            }
            if band.requests == 0 {
                self.bands.remove(&entry.priority);
            }
        }
        if self.requests == 0 {
            self.expiries.clear();
        } else if self.expiries.len() > 2 * self.requests + STALE_SLACK {
            let slots = &self.slots;
            self.expiries
                .retain(|Reverse((_, ticket))| is_live(slots, *ticket));
        }
        Some(entry)
    }
}

/// Stale tickets a queue may hold beyond twice its live ones before it is compacted, so
/// clients that come and go while nothing is dispatched cannot grow it without bound.
const STALE_SLACK: usize = 32;

fn compact<T>(flow: &mut Flow, slots: &[Slot<T>]) {
    flow.arrivals.retain(|ticket| is_live(slots, *ticket));
    flow.by_deadline
        .retain(|Reverse((_, _, ticket))| is_live(slots, *ticket));
}

fn is_live<T>(slots: &[Slot<T>], ticket: Ticket) -> bool {
    slots
        .get(ticket.slot as usize)
        .is_some_and(|s| s.generation == ticket.generation && s.entry.is_some())
}

/// The flow's next live request, dropping stale tickets on the way.
fn next_live<T>(flow: &mut Flow, ordering: Ordering, slots: &[Slot<T>]) -> Option<Ticket> {
    match ordering {
        Ordering::Fcfs => {
            while let Some(&ticket) = flow.arrivals.front() {
                if is_live(slots, ticket) {
                    return Some(ticket);
                }
                flow.arrivals.pop_front();
            }
            None
        }
        Ordering::Edf => {
            while let Some(&Reverse((_, _, ticket))) = flow.by_deadline.peek() {
                if is_live(slots, ticket) {
                    return Some(ticket);
                }
                flow.by_deadline.pop();
            }
            None
        }
    }
}

fn refused<T>(entry: Entry<T>, reason: Rejection, now: Duration) -> Refused<T> {
    Refused {
        waited: now.saturating_sub(entry.arrived_at),
        payload: entry.payload,
        priority: entry.priority,
        reason,
    }
}

#[cfg(test)]
#[path = "queues_tests.rs"]
mod tests;
