//! Where each value of a JSON text is, in bytes: so `promote` can change one string and drop
//! array elements while every other byte of the file stays as written.

/// A JSON value's byte range in the text, and for containers where their members are.
#[derive(Debug)]
pub struct Node {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Text(String),
    Other,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Array(items) => items,
            _ => &[],
        }
    }

    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// The spans of a JSON text (already known to be valid JSON: errors are `None`).
pub fn parse(text: &str) -> Option<Node> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
        text,
    };
    let node = parser.value()?;
    Some(node)
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Option<Node> {
        self.skip_space();
        let start = self.at;
        let kind =
            match self.bytes.get(self.at)? {
                b'{' => {
                    self.at += 1;
                    let mut members = Vec::new();
                    loop {
                        self.skip_space();
                        if self.bytes.get(self.at) == Some(&b'}') {
                            self.at += 1;
                            break;
                        }
                        let key = self.value()?;
                        self.skip_space();
                        if self.bytes.get(self.at) != Some(&b':') {
                            return None;
                        }
                        self.at += 1;
                        let value = self.value()?;
                        members.push((key.text()?.to_string(), value));
                        self.skip_space();
                        match self.bytes.get(self.at)? {
                            b',' => self.at += 1,
                            b'}' => {
                                self.at += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                    Kind::Object(members)
                }
                b'[' => {
                    self.at += 1;
                    let mut items = Vec::new();
                    loop {
                        self.skip_space();
                        if self.bytes.get(self.at) == Some(&b']') {
                            self.at += 1;
                            break;
                        }
                        items.push(self.value()?);
                        self.skip_space();
                        match self.bytes.get(self.at)? {
                            b',' => self.at += 1,
                            b']' => {
                                self.at += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                    Kind::Array(items)
                }
                b'"' => {
                    self.at += 1;
                    while *self.bytes.get(self.at)? != b'"' {
                        self.at += if self.bytes[self.at] == b'\\' { 2 } else { 1 };
                    }
                    self.at += 1;
                    let raw = self.text.get(start..self.at)?;
                    Kind::Text(serde_json::from_str(raw).ok()?)
                }
                _ => {
                    while self.bytes.get(self.at).is_some_and(|b| {
                        !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace()
                    }) {
                        self.at += 1;
                    }
                    Kind::Other
                }
            };
        Some(Node {
            start,
            end: self.at,
            kind,
        })
    }
}
