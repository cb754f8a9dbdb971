//! `make guard-report`: the guard's error rates over the grid of docs/guard.md, computed from
//! the pure guard module (an exact Markov chain where the canary is judged alone, a seeded
//! simulation of the whole guard state elsewhere), written between the report markers of
//! the file named on the command line (stdout without one).

use split_mirror::rollout::cusum::{Test, TARGET_HORIZON_ANSWERS};
use split_mirror::rollout::guard::Guard;
use split_mirror::rollout::run_length::{run_length, simulate, Scenario, Simulated};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const BEGIN: &str = "<!-- guard-report:begin -->";
const END: &str = "<!-- guard-report:end -->";

const LIMITS: [f64; 2] = [0.01, 0.05];
/// Canary answers per second.
const RATES: [f64; 5] = [0.1, 1.0, 10.0, 100.0, 1000.0];
const HOUR_S: f64 = 3600.0;
const DAY_S: f64 = 86_400.0;
/// The true 5xx share as a multiple of the limit; `None` is hard down (100 %).
const MULTIPLES: [Option<f64>; 8] = [
    Some(0.0),
    Some(0.5),
    Some(1.0),
    Some(1.5),
    Some(2.0),
    Some(3.0),
    Some(4.0),
    None,
];
const SEED: u64 = 0x5eed_2026_1204;
/// Runs per simulated cell (the long shared-failure runs use `LONG_RUNS`).
const RUNS: u64 = 1000;
const SHARED_RUNS: u64 = 2000;
const LONG_RUNS: u64 = 500;
const THREADS: usize = 2;

fn guard(limit: f64) -> Guard {
    Guard {
        max_error_rate: limit,
        max_error_rate_millionths: (limit * 1e6).round() as u64,
        min_requests: 1,
        window_s: 30,
        sensitivity: 2.0,
        false_abort_rate: 0.01,
        errors: Test::new(limit, 2.0, 0.01),
        latency: None,
    }
}

fn share_of(limit: f64, multiple: Option<f64>) -> f64 {
    multiple.map_or(1.0, |m| (m * limit).min(1.0))
}

fn multiple_label(limit: f64, multiple: Option<f64>) -> String {
    match multiple {
        Some(m) => format!("{m}× ({} %)", trim(m * limit * 100.0)),
        None => "hard down (100 %)".into(),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A probability as a percentage a reader can compare with 1 % and 99 %.
fn percent(p: f64) -> String {
    if p <= 0.0 {
        "0".into()
    } else if p < 1e-6 {
        format!("{:.0e} %", p * 100.0)
    } else if p < 0.001 {
        format!("{:.1e} %", p * 100.0)
    } else if p < 0.999_99 {
        format!("{} %", trim_sig(p * 100.0))
    } else if p < 1.0 - 1e-12 {
        format!("1 − {:.0e}", 1.0 - p)
    } else {
        "100 %".into()
    }
}

fn trim_sig(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.1}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn answers(value: Option<f64>) -> String {
    match value {
        None => "never".into(),
        Some(v) if v >= 1e6 => format!("{v:.1e}"),
        Some(v) => format!("{v:.0}"),
    }
}

/// `(rate, duration)` columns, in the order of the tables.
fn columns() -> Vec<(f64, f64)> {
    RATES
        .iter()
        .flat_map(|&r| [(r, HOUR_S), (r, DAY_S)])
        .collect()
}

fn column_header(out: &mut String, first: &str) {
    let _ = write!(out, "| {first} | median | p99 |");
    for (rate, duration) in columns() {
        let _ = write!(
            out,
            " {}/s {} |",
            trim(rate),
            if duration == HOUR_S { "1 h" } else { "24 h" }
        );
    }
    out.push('\n');
    out.push_str("|---|---|---|");
    out.push_str(&"---|".repeat(columns().len()));
    out.push('\n');
}

/// The exact tables: the canary judged alone.
fn alone_tables(out: &mut String) {
    let horizons: Vec<f64> = columns().iter().map(|(r, d)| r * d).collect();
    for limit in LIMITS {
        let test = Test::new(limit, 2.0, 0.01);
        let _ = writeln!(
            out,
            "\n**Judged alone** (the last step), `max_error_rate` {limit}: up {} units per 5xx, \
             down {} per good answer, threshold {} (a hard-down canary is aborted at its {}th \
             answer). Exact Markov chain; P(abort) per canary traffic and duration.\n",
            test.up,
            test.down,
            test.threshold,
            test.failures_to_threshold()
        );
        column_header(out, "true 5xx share (× limit)");
        for multiple in MULTIPLES {
            let result = run_length(&test, share_of(limit, multiple), &horizons);
            let _ = write!(
                out,
                "| {} | {} | {} |",
                multiple_label(limit, multiple),
                answers(result.median),
                answers(result.p99)
            );
            for horizon in &horizons {
                let p = result
                    .crossed_by
                    .iter()
                    .find(|(h, _)| h == horizon)
                    .map_or(0.0, |(_, p)| *p);
                let _ = write!(out, " {} |", percent(p));
            }
            out.push('\n');
        }
        let bound = test.false_abort_bound(limit / 2.0, TARGET_HORIZON_ANSWERS);
        let _ = writeln!(
            out,
            "\nVille's bound for 0.5× over 86.4 M answers (what the threshold was set from): {}.",
            percent(bound)
        );
    }
}

/// A simulation to run on a worker thread.
struct Job {
    key: String,
    limit: f64,
    scenario: Scenario,
    runs: u64,
}

fn run_jobs(jobs: Vec<Job>) -> Vec<(String, Simulated)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(index) else { break };
                let seed = SEED ^ split_mirror::hash::fnv1a64(job.key.as_bytes());
                let result = simulate(&guard(job.limit), job.scenario, job.runs, seed);
                if let Ok(mut results) = results.lock() {
                    results.push((job.key.clone(), result));
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

fn find<'a>(results: &'a [(String, Simulated)], key: &str) -> Option<&'a Simulated> {
    results.iter().find(|(k, _)| k == key).map(|(_, r)| r)
}

const SHARES_WITH_OTHERS: [f64; 2] = [0.5, 0.9];

fn with_others_jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for limit in LIMITS {
        for traffic_share in SHARES_WITH_OTHERS {
            for multiple in [Some(2.0), Some(3.0), Some(4.0), None] {
                for rate in RATES {
                    jobs.push(Job {
                        key: format!("others/{limit}/{traffic_share}/{multiple:?}/{rate}"),
                        limit,
                        scenario: Scenario {
                            canary_share: share_of(limit, multiple),
                            others_share: 0.0,
                            traffic_share,
                            canary_rate: rate,
                            answers: (rate * DAY_S) as u64,
                        },
                        runs: RUNS,
                    });
                }
            }
        }
    }
    jobs
}

/// The shared failures: (label, share of both).
fn shared_cases(limit: f64) -> Vec<(String, f64)> {
    let mut cases = vec![(
        format!("both at 4× ({} %)", trim(400.0 * limit)),
        4.0 * limit,
    )];
    if (4.0 * limit - 0.2).abs() > 1e-9 {
        cases.push(("both at 20 %".into(), 0.2));
    }
    cases
}

const SHARES_SHARED: [f64; 2] = [0.1, 0.9];

fn shared_jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for limit in LIMITS {
        for (label, share) in shared_cases(limit) {
            for traffic_share in SHARES_SHARED {
                let scenario = |rate: f64, answers: u64| Scenario {
                    canary_share: share,
                    others_share: share,
                    traffic_share,
                    canary_rate: rate,
                    answers,
                };
                for rate in [0.1, 1.0, 10.0] {
                    jobs.push(Job {
                        key: format!("shared/{limit}/{label}/{traffic_share}/{rate}"),
                        limit,
                        scenario: scenario(rate, (rate * HOUR_S) as u64),
                        runs: SHARED_RUNS,
                    });
                }
                // 100/s and 1000/s: one process observed for 360 k and 3.6 M answers.
                jobs.push(Job {
                    key: format!("shared/{limit}/{label}/{traffic_share}/long"),
                    limit,
                    scenario: scenario(1000.0, (1000.0 * HOUR_S) as u64),
                    runs: LONG_RUNS,
                });
            }
        }
    }
    jobs
}

fn with_others_tables(out: &mut String, results: &[(String, Simulated)]) {
    for limit in LIMITS {
        for traffic_share in SHARES_WITH_OTHERS {
            let _ = writeln!(
                out,
                "\n**Canary at {} % of the traffic**, the other backends at 0 % 5xx, \
                 `max_error_rate` {limit}: simulated, {RUNS} runs a cell; answers to abort at \
                 the 1/s column's runs. Healthy rows: at most the judged-alone table's (the \
                 comparison can only hold an abort back).\n",
                trim(traffic_share * 100.0)
            );
            column_header(out, "true 5xx share (× limit)");
            for multiple in [Some(2.0), Some(3.0), Some(4.0), None] {
                let key = |rate: f64| format!("others/{limit}/{traffic_share}/{multiple:?}/{rate}");
                let Some(reference) = find(results, &key(1.0)) else {
                    continue;
                };
                let quantile = |q| reference.quantile(q).map(|a| a as f64);
                let _ = write!(
                    out,
                    "| {} | {} | {} |",
                    multiple_label(limit, multiple),
                    answers(quantile(0.5)),
                    answers(quantile(0.99))
                );
                for (rate, duration) in columns() {
                    let cell = find(results, &key(rate))
                        .map(|r| percent(r.aborted_within((rate * duration) as u64)));
                    let _ = write!(out, " {} |", cell.unwrap_or_default());
                }
                out.push('\n');
            }
        }
    }
}

/// The one-sided 95 % upper bound of a share from `k` of `n` (Clopper-Pearson, by bisection).
fn upper_95(k: u64, n: u64) -> f64 {
    let cdf = |p: f64| -> f64 {
        // P(X <= k) for X ~ Binomial(n, p), summed in logs.
        let mut total = 0.0;
        let mut log_term = n as f64 * (1.0 - p).ln();
        for i in 0..=k {
            if i > 0 {
                log_term += ((n - i + 1) as f64 / i as f64).ln() + (p / (1.0 - p)).ln();
            }
            total += log_term.exp();
        }
        total
    };
    let (mut low, mut high) = (k as f64 / n as f64, 1.0);
    for _ in 0..60 {
        let middle = (low + high) / 2.0;
        if cdf(middle) > 0.05 {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

fn shared_table(out: &mut String, results: &[(String, Simulated)]) {
    let _ = writeln!(
        out,
        "\n**Shared failure**, one hour: aborted runs / runs (95 % upper bound of the abort \
         chance). 0.1 to 10/s: {SHARED_RUNS} runs of one hour each; 100/s and 1000/s: \
         {LONG_RUNS} runs of 3.6 M canary answers, read at 360 k and 3.6 M.\n"
    );
    out.push_str("| max_error_rate | both backends | canary's traffic share |");
    for rate in RATES {
        let _ = write!(out, " {}/s |", trim(rate));
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(RATES.len()));
    out.push('\n');
    for limit in LIMITS {
        for (label, _) in shared_cases(limit) {
            for traffic_share in SHARES_SHARED {
                let _ = write!(
                    out,
                    "| {limit} | {label} | {} % |",
                    trim(traffic_share * 100.0)
                );
                for rate in RATES {
                    let key = if rate <= 10.0 {
                        format!("shared/{limit}/{label}/{traffic_share}/{rate}")
                    } else {
                        format!("shared/{limit}/{label}/{traffic_share}/long")
                    };
                    let cell = find(results, &key).map(|r| {
                        let aborted = if rate <= 10.0 {
                            r.aborted
                        } else {
                            r.answers_to_abort
                                .partition_point(|&a| a as f64 <= rate * HOUR_S)
                                as u64
                        };
                        format!(
                            "{aborted}/{} (≤ {})",
                            r.runs,
                            percent(upper_95(aborted, r.runs))
                        )
                    });
                    let _ = write!(out, " {} |", cell.unwrap_or_default());
                }
                out.push('\n');
            }
        }
    }
}

fn report() -> String {
    let started = Instant::now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Generated by `make guard-report` (src/bin/guard-report.rs, seed {SEED:#x}); \
         `sensitivity` 2, `false_abort_rate` 0.01, `window_s` 30, `min_requests` 1 (a larger \
         `min_requests` only delays an abort until that many canary answers)."
    );
    alone_tables(&mut out);
    let mut jobs = with_others_jobs();
    jobs.extend(shared_jobs());
    // The long jobs first, so that the two threads finish together.
    jobs.sort_by_key(|job| std::cmp::Reverse(job.scenario.answers.saturating_mul(job.runs)));
    let results = run_jobs(jobs);
    with_others_tables(&mut out, &results);
    shared_table(&mut out, &results);
    let _ = writeln!(
        out,
        "\n(computed in {:.0} s on {THREADS} threads)",
        started.elapsed().as_secs_f64()
    );
    out
}

fn main() {
    let target = std::env::args().nth(1);
    let table = report();
    let Some(path) = target else {
        print!("{table}");
        return;
    };
    let document = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("guard-report: cannot read {path}: {error}");
            std::process::exit(1);
        }
    };
    let parts = document
        .split_once(BEGIN)
        .and_then(|(head, rest)| Some((head, rest.split_once(END)?.1)));
    let Some((head, tail)) = parts else {
        eprintln!("guard-report: {path} has no `{BEGIN}` ... `{END}` markers");
        std::process::exit(1);
    };
    let updated = format!("{head}{BEGIN}\n{table}{END}{tail}");
    if let Err(error) = std::fs::write(&path, updated) {
        eprintln!("guard-report: cannot write {path}: {error}");
        std::process::exit(1);
    }
    eprintln!("guard-report: wrote the tables into {path}");
}
