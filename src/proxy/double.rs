//! An in-memory [`Proxy`] for native unit tests: a settable clock, shared data with CAS tokens,
//! a stat store, recorded HTTP calls and the timer. [`FakeProxy::worker`] makes another worker
//! of the same proxy: it shares the clock, the shared data and the stats (as Envoy's workers
//! do), and has its own calls and timer.

use super::{Headers, HttpCall, MetricKind, Proxy, Refused, Shared};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// An HTTP call as the filter sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

#[derive(Default)]
struct Stats {
    /// `(name, kind, value)`, the id is the index (a second definition returns the same id).
    all: Vec<(String, MetricKind, i64)>,
    /// Definitions asked for, refused ones included.
    definitions: usize,
}

/// The shared data: each key's value and CAS token.
type SharedData = HashMap<String, (Vec<u8>, u32)>;

/// One worker of a simulated proxy.
pub struct FakeProxy {
    clock: Rc<Cell<u64>>,
    shared: Rc<RefCell<SharedData>>,
    stats: Rc<RefCell<Stats>>,
    /// Stat names this proxy refuses to define.
    refused_stats: Rc<RefCell<Vec<String>>>,
    dispatched: RefCell<Vec<Dispatched>>,
    next_token: Cell<u32>,
    tick: Cell<Option<Duration>>,
    tick_sets: Cell<usize>,
    /// The next calls of these kinds are refused.
    pub refuse_dispatch: Cell<bool>,
    pub refuse_tick: Cell<bool>,
}

impl Default for FakeProxy {
    fn default() -> Self {
        FakeProxy::new(0)
    }
}

impl FakeProxy {
    /// A proxy with one worker, its clock at `now_ms`.
    pub fn new(now_ms: u64) -> FakeProxy {
        FakeProxy {
            clock: Rc::new(Cell::new(now_ms)),
            shared: Rc::default(),
            stats: Rc::default(),
            refused_stats: Rc::default(),
            dispatched: RefCell::default(),
            next_token: Cell::new(1),
            tick: Cell::new(None),
            tick_sets: Cell::new(0),
            refuse_dispatch: Cell::new(false),
            refuse_tick: Cell::new(false),
        }
    }

    /// Another worker of the same proxy.
    pub fn worker(&self) -> FakeProxy {
        FakeProxy {
            clock: Rc::clone(&self.clock),
            shared: Rc::clone(&self.shared),
            stats: Rc::clone(&self.stats),
            refused_stats: Rc::clone(&self.refused_stats),
            ..FakeProxy::new(0)
        }
    }

    pub fn set_now(&self, now_ms: u64) {
        self.clock.set(now_ms);
    }

    pub fn advance(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }

    /// A stat's value (summed over the workers), `None` if never defined.
    pub fn stat(&self, name: &str) -> Option<i64> {
        let stats = self.stats.borrow();
        stats.all.iter().find(|(n, _, _)| n == name).map(|s| s.2)
    }

    /// Every defined stat's name, in definition order.
    pub fn stat_names(&self) -> Vec<String> {
        self.stats
            .borrow()
            .all
            .iter()
            .map(|s| s.0.clone())
            .collect()
    }

    /// How many definitions were asked for (a stat defined twice counts twice).
    pub fn definitions(&self) -> usize {
        self.stats.borrow().definitions
    }

    /// Refuse to define `name` from now on.
    pub fn refuse_stat(&self, name: &str) {
        self.refused_stats.borrow_mut().push(name.to_string());
    }

    /// The calls this worker sent, oldest first.
    pub fn dispatched(&self) -> Vec<Dispatched> {
        self.dispatched.borrow().clone()
    }

    /// The timer's period last set on this worker (`None`: never set).
    pub fn tick(&self) -> Option<Duration> {
        self.tick.get()
    }

    /// How many times this worker set its timer.
    pub fn tick_sets(&self) -> usize {
        self.tick_sets.get()
    }

    /// The raw shared value at `key`.
    pub fn shared_value(&self, key: &str) -> Option<Vec<u8>> {
        self.shared.borrow().get(key).map(|(v, _)| v.clone())
    }
}

impl Proxy for FakeProxy {
    fn now_ms(&self) -> u64 {
        self.clock.get()
    }

    fn shared_data(&self, key: &str) -> Result<Shared, Refused> {
        Ok(match self.shared.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Refused> {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map(|(_, c)| *c);
        if let (Some(cas), Some(current)) = (cas, current) {
            if cas != current {
                return Err(Refused::cas_mismatch());
            }
        }
        let next = current.map_or(1, |c| c + 1);
        shared.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, Refused> {
        let mut stats = self.stats.borrow_mut();
        stats.definitions += 1;
        if self.refused_stats.borrow().iter().any(|n| n == name) {
            return Err(Refused("BadArgument".to_string()));
        }
        if let Some(id) = stats.all.iter().position(|(n, _, _)| n == name) {
            return Ok(id as u32);
        }
        stats.all.push((name.to_string(), kind, 0));
        Ok(stats.all.len() as u32 - 1)
    }

    fn add_metric(&self, id: u32, delta: i64) {
        if let Some(stat) = self.stats.borrow_mut().all.get_mut(id as usize) {
            stat.2 += delta;
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        if let Some(stat) = self.stats.borrow_mut().all.get_mut(id as usize) {
            stat.2 = value as i64;
        }
    }

    fn dispatch(&self, call: HttpCall<'_>) -> Result<u32, Refused> {
        if self.refuse_dispatch.get() {
            return Err(Refused("BadArgument".to_string()));
        }
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        self.dispatched.borrow_mut().push(Dispatched {
            token,
            cluster: call.cluster.to_string(),
            headers: call
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: call.body.map(<[u8]>::to_vec),
            timeout: call.timeout,
        });
        Ok(token)
    }

    fn set_tick(&self, period: Duration) -> Result<(), Refused> {
        if self.refuse_tick.get() {
            return Err(Refused("BadArgument".to_string()));
        }
        self.tick.set(Some(period));
        self.tick_sets.set(self.tick_sets.get() + 1);
        Ok(())
    }
}

/// A stream's headers, readable and writable by tests.
#[derive(Debug, Default)]
pub struct FakeHeaders {
    pub headers: RefCell<Vec<(String, Vec<u8>)>>,
    /// How many header reads the filter made.
    pub reads: Cell<usize>,
}

impl FakeHeaders {
    pub fn new(headers: &[(&str, &str)]) -> FakeHeaders {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        FakeHeaders {
            headers: RefCell::new(headers),
            reads: Cell::new(0),
        }
    }

    /// A header's first value as text.
    pub fn get(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }

    /// Every value of a header, as text.
    pub fn all(&self, name: &str) -> Vec<String> {
        let headers = self.headers.borrow();
        let values = headers.iter().filter(|(n, _)| n == name);
        values
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

impl Headers for FakeHeaders {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
        let headers = self.headers.borrow();
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn set_header(&self, name: &str, value: Option<&[u8]>) {
        let mut headers = self.headers.borrow_mut();
        headers.retain(|(n, _)| n != name);
        if let Some(value) = value {
            headers.push((name.to_string(), value.to_vec()));
        }
    }

    fn add_header(&self, name: &str, value: &[u8]) {
        let mut headers = self.headers.borrow_mut();
        headers.push((name.to_string(), value.to_vec()));
    }

    /// The host's serialization (proxy-wasm-cpp-host `marshalPairs`).
    fn header_block(&self) -> Option<Vec<u8>> {
        let headers = self.headers.borrow();
        let mut out = (headers.len() as u32).to_le_bytes().to_vec();
        for (name, value) in headers.iter() {
            out.extend((name.len() as u32).to_le_bytes());
            out.extend((value.len() as u32).to_le_bytes());
        }
        for (name, value) in headers.iter() {
            out.extend(name.as_bytes());
            out.push(0);
            out.extend(value);
            out.push(0);
        }
        Some(out)
    }
}
