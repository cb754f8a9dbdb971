//! Many requests fast: GETs over kept-alive connections from several threads, bounded in count
//! and time, each answer recorded as (status, `x-served-by`). For the guard's tests, which need
//! thousands of canary answers at hundreds per second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One answer: its status (0: the connection failed) and the backend that served it.
pub type Answer = (u16, String);

/// Sends `count` GETs of `path` with `host` to `port` from `threads` kept-alive connections (a
/// connection that fails is replaced), stopping at `max_time`.
pub fn burst(
    port: u16,
    host: &str,
    path: &str,
    count: usize,
    threads: usize,
    max_time: Duration,
) -> Vec<Answer> {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (host, path) = (host.to_string(), path.to_string());
            let share = count / threads + usize::from(t < count % threads);
            std::thread::spawn(move || {
                let mut answers = Vec::with_capacity(share);
                let mut connection: Option<BufReader<TcpStream>> = None;
                while answers.len() < share && started.elapsed() < max_time {
                    let reader = match connection.as_mut() {
                        Some(reader) => reader,
                        None => match connect(port) {
                            Ok(reader) => connection.insert(reader),
                            Err(_) => {
                                answers.push((0, "-".into()));
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    match exchange(reader, &host, &path) {
                        Ok((answer, keep)) => {
                            answers.push(answer);
                            if !keep {
                                connection = None;
                            }
                        }
                        Err(_) => {
                            answers.push((0, "-".into()));
                            connection = None;
                        }
                    }
                }
                answers
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect()
}

fn connect(port: u16) -> std::io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}

/// One request and its answer on a kept-alive connection; whether it stays open.
fn exchange(
    reader: &mut BufReader<TcpStream>,
    host: &str,
    path: &str,
) -> std::io::Result<(Answer, bool)> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes())?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, line.clone()))?;
    let (mut length, mut served, mut keep) = (0usize, String::from("-"), true);
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "x-served-by" => served = value.to_string(),
            "connection" if value.eq_ignore_ascii_case("close") => keep = false,
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(((status, served), keep))
}
