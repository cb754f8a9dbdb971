//! The fast subset of `make guard-report`: the guarantees of docs/guard.md on short horizons,
//! with statistical checks at about 4 standard deviations.

use super::*;

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

/// `expected` share of `runs` plus four standard deviations, as a count.
fn at_most(expected: f64, runs: u64) -> u64 {
    let n = runs as f64;
    (expected * n + 4.0 * (n * expected * (1.0 - expected)).sqrt()).ceil() as u64
}

fn crossed(result: &RunLength, horizon: f64) -> f64 {
    result
        .crossed_by
        .iter()
        .find(|(h, _)| *h == horizon)
        .map_or(f64::NAN, |(_, p)| *p)
}

#[test]
fn healthy_canary_is_aborted_in_under_one_percent_of_days_at_1000_per_second() {
    for limit in [0.01, 0.05] {
        let test = Test::new(limit, 2.0, 0.01);
        let day = 86_400_000.0;
        let exact = crossed(&run_length(&test, limit / 2.0, &[day]), day);
        assert!(exact <= 0.01, "limit {limit}: {exact}");
        // The bound the threshold was set from holds, and is not absurdly loose.
        let bound = test.false_abort_bound(limit / 2.0, day);
        assert!(
            exact <= bound && bound <= 0.01 && bound >= exact * 1.5,
            "{exact} {bound}"
        );
    }
}

#[test]
fn canary_at_twice_the_limit_is_aborted_within_a_day_at_a_tenth_per_second() {
    for limit in [0.01, 0.05] {
        let test = Test::new(limit, 2.0, 0.01);
        let day = 8640.0;
        let exact = crossed(&run_length(&test, 2.0 * limit, &[day]), day);
        assert!(exact >= 0.99, "limit {limit}: {exact}");
    }
}

#[test]
fn hard_down_canary_is_aborted_within_25_answers() {
    for limit in [0.001, 0.01, 0.05, 0.2] {
        let test = Test::new(limit, 2.0, 0.01);
        let result = run_length(&test, 1.0, &[25.0]);
        assert_eq!(crossed(&result, 25.0), 1.0, "limit {limit}");
        assert_eq!(result.p99, Some(test.failures_to_threshold() as f64));
    }
}

#[test]
fn chain_agrees_with_the_simulated_guard() {
    // Judged alone, the simulated guard is the chain: P(abort within 400 answers) at 2× the
    // 5 % limit, simulated, within 4 standard deviations of the exact value.
    let guard = guard(0.05);
    let exact = crossed(&run_length(&guard.errors, 0.1, &[400.0]), 400.0);
    let scenario = Scenario {
        canary_share: 0.1,
        others_share: 0.0,
        traffic_share: 1.0,
        canary_rate: 100.0,
        answers: 400,
    };
    let runs = 2000;
    let simulated = simulate(&guard, scenario, runs, 11);
    let sigma = (exact * (1.0 - exact) / runs as f64).sqrt();
    assert!(
        (simulated.abort_share() - exact).abs() <= 4.0 * sigma,
        "simulated {} exact {exact}",
        simulated.abort_share()
    );
}

#[test]
fn shared_failure_is_not_blamed_on_the_canary() {
    for (traffic_share, share) in [(0.1, 0.2), (0.5, 0.2), (0.9, 0.2), (0.5, 0.04)] {
        let scenario = Scenario {
            canary_share: share,
            others_share: share,
            traffic_share,
            canary_rate: 100.0,
            answers: 5000,
        };
        let runs = 300;
        let result = simulate(&guard(0.01), scenario, runs, 5);
        assert!(
            result.aborted <= at_most(0.01, runs),
            "canary at {traffic_share} of the traffic, both at {share}: {}/{runs} aborted",
            result.aborted
        );
    }
}

#[test]
fn bad_canary_beside_healthy_others_is_aborted_as_the_report_says() {
    // Canary at 50 % of the traffic, 3× the 1 % limit: the report's p99 is about 1,540
    // answers; every run of 300 must abort by 2,500.
    let scenario = Scenario {
        canary_share: 0.03,
        others_share: 0.0,
        traffic_share: 0.5,
        canary_rate: 100.0,
        answers: 2500,
    };
    let runs = 300;
    let result = simulate(&guard(0.01), scenario, runs, 3);
    assert!(
        result.aborted + at_most(0.01, runs) >= runs,
        "{}/{runs}",
        result.aborted
    );
    // Hard down beside healthy others, canary at half the traffic: within 25 answers.
    let hard_down = Scenario {
        canary_share: 1.0,
        ..scenario
    };
    let result = simulate(&guard(0.01), hard_down, runs, 4);
    assert_eq!(result.aborted, runs);
    assert!(
        result.quantile(1.0).is_some_and(|a| a <= 25),
        "{:?}",
        result.quantile(1.0)
    );
}

#[test]
fn a_canary_that_never_fails_is_never_aborted() {
    let test = Test::new(0.01, 2.0, 0.01);
    let result = run_length(&test, 0.0, &[1e9]);
    assert_eq!(result.crossed_by, vec![(1e9, 0.0)]);
    assert_eq!(result.median, None);
}
