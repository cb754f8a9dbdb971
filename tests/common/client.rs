//! A raw HTTP/1.1 client: writes exactly the bytes a test asks for (odd hosts, non-UTF-8
//! values, chunked bodies), one connection per request; or several requests on one kept-alive
//! [`Connection`] (which stays on one Envoy worker).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// `None` sends no Host header at all.
    pub host: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Send the body with `transfer-encoding: chunked` instead of `content-length`.
    pub chunked: bool,
    /// Leave out `connection: close` (requests sent on a [`Connection`]).
    keep_alive: bool,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            host: Some(b"httpbin".to_vec()),
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
            keep_alive: false,
        }
    }

    pub fn get(path: &str) -> Self {
        Request::new("GET", path)
    }

    pub fn host(mut self, host: impl AsRef<[u8]>) -> Self {
        self.host = Some(host.as_ref().to_vec());
        self
    }

    pub fn no_host(mut self) -> Self {
        self.host = None;
        self
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>, chunked: bool) -> Self {
        self.body = body.into();
        self.chunked = chunked;
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        if let Some(host) = &self.host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !self.keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        }
        if self.chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            for chunk in self.body.chunks(64 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            if !self.body.is_empty() || self.method != "GET" {
                out.extend_from_slice(
                    format!("content-length: {}\r\n", self.body.len()).as_bytes(),
                );
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&self.body);
        }
        out
    }

    pub fn send(&self, port: u16) -> Response {
        self.try_send(port)
            .unwrap_or_else(|error| panic!("{} {} to :{port}: {error}", self.method, self.path))
    }

    pub fn try_send(&self, port: u16) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        stream.write_all(&self.to_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Response::parse(&raw)
    }
}

/// One kept-alive HTTP/1.1 connection: every request on it is served by the Envoy worker that
/// accepted it.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read past the last response.
    pending: Vec<u8>,
}

impl Connection {
    pub fn open(port: u16) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            stream,
            pending: Vec::new(),
        }
    }

    /// Sends `request` (without `connection: close`) and reads its response: a head, then a
    /// `content-length` or chunked body.
    pub fn send(&mut self, request: &Request) -> Response {
        let mut request = request.clone();
        request.keep_alive = true;
        self.stream.write_all(&request.to_bytes()).unwrap();
        let mut raw = std::mem::take(&mut self.pending);
        let mut buffer = [0u8; 16 * 1024];
        loop {
            if let Some(length) = complete_response_length(&raw) {
                self.pending = raw.split_off(length);
                return Response::parse(&raw).unwrap();
            }
            let read = self.stream.read(&mut buffer).unwrap();
            assert!(
                read > 0,
                "Envoy closed a kept-alive connection mid-response"
            );
            raw.extend_from_slice(&buffer[..read]);
        }
    }
}

/// The length of the first whole response in `raw`, if it is all there.
fn complete_response_length(raw: &[u8]) -> Option<usize> {
    let (head, rest) = crate::common::backend::split_head(raw)?;
    let head_length = raw.len() - rest.len();
    let headers = crate::common::backend::parse_headers(head.split("\r\n").skip(1));
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
    };
    if value("transfer-encoding").as_deref() == Some("chunked") {
        let (_, used) = crate::common::backend::decode_chunked(rest)?;
        return Some(head_length + used);
    }
    let length: usize = value("content-length").map_or(Some(0), |v| v.parse().ok())?;
    (rest.len() >= length).then_some(head_length + length)
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> std::io::Result<Response> {
        let invalid =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let (head, rest) =
            crate::common::backend::split_head(raw).ok_or_else(|| invalid("no response head"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or_else(|| invalid("empty response"))?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(status_line))?;
        let headers = crate::common::backend::parse_headers(lines);
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked"));
        let body = if chunked {
            crate::common::backend::decode_chunked(rest)
                .ok_or_else(|| invalid("bad chunked body"))?
                .0
        } else {
            rest.to_vec()
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Which test backend answered (`x-served-by`), or `-` for a proxy-made answer.
    pub fn served_by(&self) -> String {
        self.header("x-served-by").unwrap_or_else(|| "-".into())
    }
}

/// Sends `n` copies of `request` and counts the responses by backend; every one must be 200.
pub fn count_by_backend(
    port: u16,
    request: &Request,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..n {
        let response = request.send(port);
        assert_eq!(response.status, 200, "request {i}: {response:?}");
        *counts.entry(response.served_by()).or_insert(0) += 1;
    }
    counts
}
