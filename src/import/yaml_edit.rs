//! Finding a route's `rollout.start` and `rollout.steps` items in the lines of a block-style
//! YAML `pluginConfig`, so `promote` changes those lines and keeps every other one (comments
//! included) as written.

/// The lines to change: the `start:` line, and where each `steps` item begins (line indexes).
#[derive(Debug)]
pub struct Found {
    pub start_line: usize,
    pub item_starts: Vec<usize>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Blank and comment lines belong to whatever block they sit in.
fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

/// The end (exclusive) of the block of lines after `from` indented more than `column`.
fn block_end(lines: &[&str], from: usize, column: usize) -> usize {
    let mut end = from + 1;
    while end < lines.len() && (!is_content(lines[end]) || indent(lines[end]) > column) {
        end += 1;
    }
    end
}

/// The value of `key:` on a line at `column`, `None` if the line is not that key.
fn key_value<'a>(line: &'a str, column: usize, key: &str) -> Option<&'a str> {
    if indent(line) != column {
        return None;
    }
    let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim())
}

fn unquote(value: &str) -> &str {
    let value = value.split(" #").next().unwrap_or(value).trim();
    value.trim_matches(|c| c == '"' || c == '\'')
}

/// Every item named `route` with a rollout under the `pluginConfig:`s of `text`, in order (an
/// HTTP route and the TLS route of the same name in another WasmPlugin, for instance).
pub fn find_all(text: &str, route: &str) -> Vec<Found> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut all = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if line.trim_end() != format!("{}pluginConfig:", " ".repeat(indent(line))) {
            continue;
        }
        let end = block_end(&lines, at, indent(line));
        let mut from = at + 1;
        while let Some(found) = find_in(&lines, from, end, route) {
            from = found.start_line + 1;
            all.push(found);
        }
    }
    all
}

/// The value of the `start:` line of `found` (unquoted).
pub fn start_value<'a>(text: &'a str, found: &Found) -> Option<&'a str> {
    let line = text.split('\n').nth(found.start_line)?;
    Some(unquote(line.trim_start().strip_prefix("start:")?))
}

fn find_in(lines: &[&str], from: usize, to: usize, route: &str) -> Option<Found> {
    for at in from..to {
        let line = lines[at];
        let trimmed = line.trim_start();
        let (column, rest) = match trimmed.strip_prefix("- ") {
            Some(rest) => (indent(line) + 2, rest),
            None => (indent(line), trimmed),
        };
        let Some(value) = rest.strip_prefix("name:") else {
            continue;
        };
        if unquote(value) != route {
            continue;
        }
        // The route's item: back to its `- `, forward to the next line at or left of it.
        let mut item_start = at;
        while item_start > from && !lines[item_start].trim_start().starts_with("- ") {
            item_start -= 1;
        }
        let item_end = block_end(lines, item_start, column.saturating_sub(2)).min(to);
        let rollout =
            (item_start..item_end).find(|&l| key_value(lines[l], column, "rollout") == Some(""))?;
        let rollout_end = block_end(lines, rollout, column).min(item_end);
        let inner = (rollout + 1..rollout_end)
            .find(|&l| is_content(lines[l]))
            .map(|l| indent(lines[l]))?;
        let start_line =
            (rollout + 1..rollout_end).find(|&l| key_value(lines[l], inner, "start").is_some())?;
        let steps = (rollout + 1..rollout_end)
            .find(|&l| key_value(lines[l], inner, "steps") == Some(""))?;
        let first = (steps + 1..rollout_end).find(|&l| is_content(lines[l]))?;
        let item_column = indent(lines[first]);
        let mut item_starts = Vec::new();
        for (l, line) in lines.iter().enumerate().take(rollout_end).skip(steps + 1) {
            if !is_content(line) {
                continue;
            }
            if indent(line) < item_column
                || (indent(line) == item_column && !line.trim_start().starts_with("- "))
            {
                break;
            }
            if indent(line) == item_column {
                item_starts.push(l);
            }
        }
        if item_starts.is_empty() {
            return None;
        }
        return Some(Found {
            start_line,
            item_starts,
        });
    }
    None
}
