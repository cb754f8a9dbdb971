//! Steady load from a background thread, bounded in count and time, that records each
//! answer's time, status and `x-served-by`: for tests that change the configuration under it.

use super::client::Request;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When an answer arrived, its status (0: no answer) and who served it.
pub type Record = (Instant, u16, String);

pub struct Load {
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    thread: JoinHandle<()>,
}

impl Load {
    /// Sends `request` to `port`, one at a time with `pause` between, until stopped, `max`
    /// requests or `max_time`.
    pub fn start(
        request: Request,
        port: u16,
        pause: Duration,
        max: usize,
        max_time: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let records: Arc<Mutex<Vec<Record>>> = Arc::default();
        let thread = {
            let (stop, records) = (stop.clone(), records.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                for _ in 0..max {
                    if stop.load(Ordering::SeqCst) || started.elapsed() > max_time {
                        break;
                    }
                    let answer = request.try_send(port);
                    let (status, served) =
                        answer.map_or((0, "-".into()), |r| (r.status, r.served_by()));
                    records
                        .lock()
                        .unwrap()
                        .push((Instant::now(), status, served));
                    std::thread::sleep(pause);
                }
            })
        };
        Load {
            stop,
            records,
            thread,
        }
    }

    /// How many answers arrived after `at`.
    pub fn count_since(&self, at: Instant) -> usize {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .rev()
            .take_while(|(when, _, _)| *when > at)
            .count()
    }

    /// Waits until `n` answers arrived after `at`, or `timeout` passed; returns the count.
    pub fn wait_for(&self, n: usize, at: Instant, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.count_since(at);
            if count >= n || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the load; every record.
    pub fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        std::mem::take(&mut *self.records.lock().unwrap())
    }
}
