//! A recording HTTP/1.1 backend: answers every request with `x-served-by: <name>` and keeps
//! what it received (method, path, headers, body) so tests can assert on the side effect.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

/// An answer chosen by the test for each request: status, headers, body, and whether the body
/// is sent in chunks (`transfer-encoding: chunked`, one chunk per 7 bytes).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
}

pub type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// How the backend answers.
#[derive(Clone)]
pub struct Behavior {
    pub status: u16,
    /// Sleep this long before answering (a slow shadow).
    pub delay: Duration,
    /// Requests whose path starts with this are answered 500.
    pub fail_path_prefix: Option<&'static str>,
    /// Each request is answered 500 with this probability, drawn from a generator the test
    /// seeds (failures at random, as production fails; never every K-th).
    pub random_failures: Option<RandomFailures>,
    /// When set, decides the whole answer (then `status` and the failure settings are unused).
    pub respond: Option<Responder>,
}

impl Behavior {
    /// Answers what `respond` returns for each request.
    pub fn replying(respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Behavior {
            respond: Some(Arc::new(respond)),
            ..Behavior::default()
        }
    }

    /// Answers 200 after `delay`.
    pub fn delayed(delay: Duration) -> Self {
        Behavior {
            delay,
            ..Behavior::default()
        }
    }

    /// Answers 500 to each request with probability `p` (seeded: a run is reproducible up to
    /// the order in which concurrent requests draw).
    pub fn failing_at_random(p: f64, seed: u64) -> Self {
        Behavior {
            random_failures: Some(RandomFailures::new(p, seed)),
            ..Behavior::default()
        }
    }

    /// Answers 500 to every request.
    pub fn failing() -> Self {
        Behavior {
            status: 500,
            ..Behavior::default()
        }
    }

    /// Answers 500 to requests under `prefix`, 200 to the others.
    pub fn failing_under(prefix: &'static str) -> Self {
        Behavior {
            fail_path_prefix: Some(prefix),
            ..Behavior::default()
        }
    }
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            status: 200,
            delay: Duration::ZERO,
            fail_path_prefix: None,
            random_failures: None,
            respond: None,
        }
    }
}

/// A seeded generator shared by a backend's connections, drawing "does this request fail".
#[derive(Clone)]
pub struct RandomFailures {
    probability: f64,
    state: Arc<Mutex<u64>>,
}

impl RandomFailures {
    pub fn new(probability: f64, seed: u64) -> Self {
        RandomFailures {
            probability,
            state: Arc::new(Mutex::new(seed)),
        }
    }

    /// splitmix64, then a uniform in [0, 1) against the probability.
    pub fn fails(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.probability
    }
}

pub struct Backend {
    pub name: String,
    pub port: u16,
    received: Arc<Mutex<Vec<Recorded>>>,
    stopped: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Backend::start_with(name, Behavior::default())
    }

    /// One default backend per name: `let [v1, v2] = Backend::start_each(["v1", "v2"]);`
    pub fn start_each<const N: usize>(names: [&str; N]) -> [Backend; N] {
        names.map(Backend::start)
    }

    pub fn start_with(name: &str, behavior: Behavior) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (thread_received, thread_stopped, thread_name) =
            (received.clone(), stopped.clone(), name.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (received, name) = (thread_received.clone(), thread_name.clone());
                let behavior = behavior.clone();
                std::thread::spawn(move || serve(stream, &name, &behavior, &received));
            }
        });
        Backend {
            name: name.into(),
            port,
            received,
            stopped,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Waits (at most `timeout`) until `n` requests arrived; returns the count reached.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.count() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.count()
    }

    /// The count once it has stopped changing for `quiet` (fire-and-forget copies still landing).
    pub fn settled_count(&self, quiet: Duration) -> usize {
        let mut last = self.count();
        loop {
            std::thread::sleep(quiet);
            let now = self.count();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut stream: TcpStream, name: &str, behavior: &Behavior, received: &Mutex<Vec<Recorded>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer) else {
            return;
        };
        let reply = behavior.respond.as_ref().map(|respond| respond(&request));
        let failing_path = behavior
            .fail_path_prefix
            .is_some_and(|prefix| request.path.starts_with(prefix));
        received.lock().unwrap().push(request);
        let random_failure = behavior.random_failures.as_ref().is_some_and(|r| r.fails());
        let status = if failing_path || random_failure {
            500
        } else {
            behavior.status
        };
        std::thread::sleep(behavior.delay);
        if let Some(reply) = reply {
            if stream.write_all(&encode(&reply, name)).is_err() {
                return;
            }
            continue;
        }
        let body = format!("{name}\n");
        let response = format!(
            "HTTP/1.1 {} X\r\nx-served-by: {name}\r\ncontent-length: {}\r\n\r\n{body}",
            status,
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A test's reply on the wire, with `x-served-by`.
fn encode(reply: &Reply, name: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} X\r\nx-served-by: {name}\r\n", reply.status).into_bytes();
    for (header, value) in &reply.headers {
        out.extend_from_slice(format!("{header}: {value}\r\n").as_bytes());
    }
    if reply.chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        for chunk in reply.body.chunks(7) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", reply.body.len()).as_bytes());
        out.extend_from_slice(&reply.body);
    }
    out
}

/// Reads one request from `stream`; `buffer` keeps bytes of the next one (keep-alive).
fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at;
        }
        fill(stream, buffer)?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let raw_head = buffer[..head_end].to_vec();
    buffer.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (
        request_line.next()?.to_string(),
        request_line.next()?.to_string(),
    );
    let headers = parse_raw_headers(&raw_head);
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
        loop {
            if let Some((body, used)) = decode_chunked(buffer) {
                buffer.drain(..used);
                break body;
            }
            fill(stream, buffer)?;
        }
    } else {
        let length: usize = value("content-length")
            .and_then(|v| String::from_utf8_lossy(&v).trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < length {
            fill(stream, buffer)?;
        }
        buffer.drain(..length).collect()
    };
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 64 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Splits a message into its head (as text, without the blank line) and the rest.
pub fn split_head(raw: &[u8]) -> Option<(String, &[u8])> {
    let at = find(raw, b"\r\n\r\n")?;
    Some((
        String::from_utf8_lossy(&raw[..at]).into_owned(),
        &raw[at + 4..],
    ))
}

/// Header lines (after the start line) as lower-case names and raw values.
pub fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, Vec<u8>)> {
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| {
            (
                name.trim().to_ascii_lowercase(),
                value.trim().as_bytes().to_vec(),
            )
        })
        .collect()
}

/// Like [`parse_headers`] on a raw head, keeping non-UTF-8 value bytes exact.
fn parse_raw_headers(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon])
                .trim()
                .to_ascii_lowercase();
            let value = line[colon + 1..].trim_ascii().to_vec();
            Some((name, value))
        })
        .collect()
}

/// Decodes a complete chunked body; returns it and the bytes used, or `None` if incomplete.
pub fn decode_chunked(raw: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&raw[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&raw[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers (if any) end with an empty line.
            let end = at + find(&raw[at..], b"\r\n")?;
            if end == at {
                return Some((body, at + 2));
            }
            let trailers_end = at + find(&raw[at..], b"\r\n\r\n")?;
            return Some((body, trailers_end + 4));
        }
        if raw.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
}
