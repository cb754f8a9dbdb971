//! Shadow answers compared with the primary's, Diffy's method inside the proxy: what differs
//! between the candidate (the mirror's cluster) and the primary, and, when a baseline (a second
//! copy of the primary's version) answered too, which of those differences the baseline shares
//! (noise: timestamps, ids) and which it does not (a regression). Pure functions; the adapter
//! collects the answers.

pub mod answers;
mod json;
pub mod pending;
pub mod results;

pub use json::Pointer;

/// A mirror's `compare` section, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    /// Lower-case response header names whose values must be equal.
    pub headers: Vec<String>,
    pub body: BodyMode,
    pub ignore: Vec<Pointer>,
    pub max_body_bytes: usize,
    /// The cluster that gets the same copy as the candidate, running the primary's version.
    pub baseline: Option<String>,
}

pub const DEFAULT_COMPARE_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    None,
    Exact,
    Json,
}

/// One side's answer, as much of it as the comparison needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// gRPC's status (from the trailers, or trailers-only headers), when there is one.
    pub grpc_status: Option<String>,
    /// The values of `Compare::headers`, in that order.
    pub headers: Vec<Option<String>>,
    /// Empty when bodies are not compared.
    pub body: Vec<u8>,
}

/// Where two answers differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    Status,
    Header(String),
    /// A JSON Pointer into the body.
    Field(String),
    /// The body's bytes (`exact`, or a body that is not JSON).
    Body,
}

impl Place {
    /// The `part` label of `split_mirror_compare_diff_total`.
    pub fn part(&self) -> Part {
        match self {
            Place::Status => Part::Status,
            Place::Header(_) => Part::Headers,
            Place::Field(_) | Place::Body => Part::Body,
        }
    }
}

/// `status`, `header content-type`, `/items/0/price`, `body`: for the log.
impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Status => f.write_str("status"),
            Place::Header(name) => write!(f, "header {name}"),
            Place::Field(pointer) => f.write_str(pointer),
            Place::Body => f.write_str("body"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Status,
    Headers,
    Body,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Status, Part::Headers, Part::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Status => "status",
            Part::Headers => "headers",
            Part::Body => "body",
        }
    }
}

/// One difference, with both values for the log (cut to [`LOGGED_VALUE_BYTES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub place: Place,
    /// For a body field: the pointer with array indexes written as `*` (the metric's label).
    pub field: Option<String>,
    pub primary: String,
    pub other: String,
}

pub const LOGGED_VALUE_BYTES: usize = 64;

/// What a compared request is counted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Same,
    /// Differences the baseline (if any) does not share.
    Differ(Vec<Difference>),
    /// Differences, every one shared by the baseline.
    Noise,
}

/// Every place where `other` differs from `primary`.
pub fn differences(compare: &Compare, primary: &Answer, other: &Answer) -> Vec<Difference> {
    let mut out = Vec::new();
    if primary.status != other.status || primary.grpc_status != other.grpc_status {
        out.push(Difference {
            place: Place::Status,
            field: None,
            primary: status_text(primary),
            other: status_text(other),
        });
    }
    for (i, name) in compare.headers.iter().enumerate() {
        let (a, b) = (header_at(primary, i), header_at(other, i));
        if a != b {
            out.push(Difference {
                place: Place::Header(name.clone()),
                field: None,
                primary: shown(a.unwrap_or("(absent)").as_bytes()),
                other: shown(b.unwrap_or("(absent)").as_bytes()),
            });
        }
    }
    match compare.body {
        BodyMode::None => {}
        BodyMode::Json => match json::differences(&primary.body, &other.body, &compare.ignore) {
            Some(fields) => out.extend(fields),
            None => out.extend(body_bytes(primary, other)),
        },
        BodyMode::Exact => out.extend(body_bytes(primary, other)),
    }
    out
}

/// The verdict on the candidate, given the baseline's answer if there is a baseline.
pub fn judge(
    compare: &Compare,
    primary: &Answer,
    candidate: &Answer,
    baseline: Option<&Answer>,
) -> Verdict {
    let found = differences(compare, primary, candidate);
    if found.is_empty() {
        return Verdict::Same;
    }
    let Some(baseline) = baseline else {
        return Verdict::Differ(found);
    };
    let noisy: Vec<Place> = differences(compare, primary, baseline)
        .into_iter()
        .map(|d| d.place)
        .collect();
    let unshared: Vec<Difference> = found
        .into_iter()
        .filter(|d| !noisy.contains(&d.place))
        .collect();
    if unshared.is_empty() {
        Verdict::Noise
    } else {
        Verdict::Differ(unshared)
    }
}

fn header_at(answer: &Answer, i: usize) -> Option<&str> {
    answer.headers.get(i).and_then(|v| v.as_deref())
}

fn status_text(answer: &Answer) -> String {
    match &answer.grpc_status {
        Some(grpc) => format!("{} grpc-status {grpc}", answer.status),
        None => answer.status.to_string(),
    }
}

fn body_bytes(primary: &Answer, other: &Answer) -> Option<Difference> {
    (primary.body != other.body).then(|| Difference {
        place: Place::Body,
        field: None,
        primary: shown(&primary.body),
        other: shown(&other.body),
    })
}

/// At most [`LOGGED_VALUE_BYTES`] of a value for the log, cut at a character boundary.
pub fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= LOGGED_VALUE_BYTES {
        return text.into_owned();
    }
    let mut out = String::with_capacity(LOGGED_VALUE_BYTES + 3);
    for c in text.chars() {
        if out.len() + c.len_utf8() > LOGGED_VALUE_BYTES {
            break;
        }
        out.push(c);
    }
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests;
