//! The command lines of `split-mirror import`, `promote` and `resume`: arguments, files (`-`
//! is stdin), and what goes to stdout (the result) and stderr (what was not carried, errors).

use super::naming::Clusters;
use super::promote::{edit, Action};
use super::{emit, import, Options};
use crate::rollout::time::{format_rfc3339, parse_rfc3339};
use std::io::Read as _;
use std::process::ExitCode;

pub const USAGE: &str = "       split-mirror import [--clusters istio|plain] [--port N] [--namespace NS] [--domain D]
                           [--start RFC3339] [--wasmplugin NAME | --envoy] FILE...
                                    one configuration from TrafficSplit, VirtualService, HTTPRoute,
                                    TLSRoute, Knative Service and Argo Rollout resources (- is stdin)
       split-mirror promote FILE --route NAME [--full]   the rollout's next (--full: last) step now
       split-mirror resume FILE --route NAME             a new start: ends an abort";

/// A file's text; `-` is stdin.
pub fn read_input(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("-: cannot read stdin: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| format!("{file}: cannot read: {e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("split-mirror: {message}");
    ExitCode::from(1)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("split-mirror: {message}\nusage:\n{USAGE}");
    ExitCode::from(2)
}

/// `--now` (tests and dry runs) or the clock.
fn now_from(value: Option<&String>) -> Result<i64, String> {
    match value {
        Some(text) => parse_rfc3339(text).map_err(|e| format!("--now: {e}")),
        None => Ok(now_ms()),
    }
}

/// `split-mirror import ...`: exit 0 with the result on stdout, 1 on an error (stdout empty),
/// 2 on a usage error.
pub fn run_import(args: &[String]) -> ExitCode {
    let mut options = Options {
        clusters: None,
        port: None,
        namespace: "default".into(),
        domain: "example.com".into(),
        start: String::new(),
    };
    let (mut files, mut wasmplugin, mut envoy, mut start) = (Vec::new(), None, false, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let parsed = match arg.as_str() {
            "--clusters" => value("--clusters").and_then(|v| match v.as_str() {
                "istio" => {
                    options.clusters = Some(Clusters::Istio);
                    Ok(())
                }
                "plain" => {
                    options.clusters = Some(Clusters::Plain);
                    Ok(())
                }
                other => Err(format!("--clusters: expected istio or plain, got {other}")),
            }),
            "--port" => value("--port").and_then(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .map(|p| options.port = Some(p))
                    .ok_or_else(|| format!("--port: expected 1..=65535, got {v}"))
            }),
            "--namespace" => value("--namespace").map(|v| options.namespace = v),
            "--domain" => value("--domain").map(|v| options.domain = v),
            "--start" => value("--start").map(|v| start = Some(v)),
            "--wasmplugin" => value("--wasmplugin").map(|v| wasmplugin = Some(v)),
            "--envoy" => {
                envoy = true;
                Ok(())
            }
            flag if flag.starts_with("--") => Err(format!("unknown option {flag}")),
            file => {
                files.push(file.to_string());
                Ok(())
            }
        };
        if let Err(message) = parsed {
            return usage(&message);
        }
    }
    if files.is_empty() || (envoy && wasmplugin.is_some()) {
        return usage("give at least one FILE, and at most one of --wasmplugin and --envoy");
    }
    options.start = match start {
        Some(text) => match parse_rfc3339(&text) {
            Ok(_) => text,
            Err(e) => return usage(&format!("--start: {e}")),
        },
        None => format_rfc3339(now_ms() - now_ms().rem_euclid(1000)),
    };
    let mut inputs = Vec::new();
    for file in &files {
        match read_input(file) {
            Ok(text) => inputs.push((file.clone(), text)),
            Err(message) => return fail(&message),
        }
    }
    let imported = match import(&inputs, &options) {
        Ok(imported) => imported,
        Err(message) => return fail(&message),
    };
    for line in &imported.not_carried {
        eprintln!("{line}");
    }
    let output = match &wasmplugin {
        Some(name) => {
            let namespace = imported
                .resources
                .iter()
                .find_map(|r| r.namespace.clone())
                .unwrap_or_else(|| options.namespace.clone());
            let (text, notes) = emit::wasm_plugins(&imported, name, &namespace);
            for note in notes {
                eprintln!("{note}");
            }
            text
        }
        None if envoy => emit::envoy(&imported.config),
        None => emit::json(&imported.config),
    };
    print!("{output}");
    ExitCode::SUCCESS
}

/// `split-mirror promote|resume FILE --route NAME [--full] [--now T]`.
pub fn run_edit(command: &str, args: &[String]) -> ExitCode {
    let (mut file, mut route, mut full, mut now) = (None, None, false, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--route" => route = args.next().cloned(),
            "--now" => now = args.next().cloned(),
            "--full" if command == "promote" => full = true,
            flag if flag.starts_with("--") => return usage(&format!("unknown option {flag}")),
            name if file.is_none() => file = Some(name.to_string()),
            extra => return usage(&format!("one FILE only, got also {extra}")),
        }
    }
    let (Some(file), Some(route)) = (file, route) else {
        return usage(&format!("{command} needs FILE and --route NAME"));
    };
    if file == "-" {
        return usage(&format!(
            "{command} edits a file in place: give its path, not -"
        ));
    }
    let action = if command == "promote" {
        Action::Promote { full }
    } else {
        Action::Resume
    };
    let result = now_from(now.as_ref())
        .and_then(|now| Ok((read_input(&file)?, now)))
        .and_then(|(text, now)| edit(&file, &text, &route, action, now));
    let edited = match result {
        Ok(edited) => edited,
        Err(message) => return fail(&message),
    };
    if let Err(e) = write_in_place(&file, &edited.text) {
        return fail(&format!("{file}: cannot write: {e}"));
    }
    for change in &edited.changes {
        println!("{file}: {change}");
    }
    ExitCode::SUCCESS
}

/// Through a temporary file and a rename: a reader never sees half a file.
fn write_in_place(file: &str, text: &str) -> std::io::Result<()> {
    let temporary = format!("{file}.split-mirror-tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, file)
}
