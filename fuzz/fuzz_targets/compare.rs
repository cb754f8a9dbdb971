//! The answer comparison on arbitrary bodies and ignore pointers: never panics; an answer is
//! always the same as itself; every difference found names a pointer for a JSON body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use split_mirror::compare::{differences, judge, Answer, BodyMode, Compare, Pointer, Verdict};

fuzz_target!(|data: &[u8]| {
    // Three parts split at 0xff bytes: the primary's body, the other body, ignore pointers.
    let mut parts = data.splitn(3, |&b| b == 0xff);
    let primary = parts.next().unwrap_or_default();
    let other = parts.next().unwrap_or_default();
    let ignore: Vec<Pointer> = String::from_utf8_lossy(parts.next().unwrap_or_default())
        .lines()
        .filter_map(|line| Pointer::parse(line).ok())
        .collect();
    for body in [BodyMode::Exact, BodyMode::Json] {
        let compare = Compare {
            headers: vec!["content-type".into()],
            body,
            ignore: ignore.clone(),
            max_body_bytes: 1 << 20,
            baseline: None,
        };
        let answer = |bytes: &[u8]| Answer {
            status: 200,
            grpc_status: None,
            headers: vec![None],
            body: bytes.to_vec(),
        };
        let (a, b) = (answer(primary), answer(other));
        assert_eq!(judge(&compare, &a, &a, None), Verdict::Same);
        let found = differences(&compare, &a, &b);
        if primary == other {
            assert!(found.is_empty());
        }
        // Differences the baseline shares are noise: b against itself as the baseline.
        if !found.is_empty() {
            assert_eq!(judge(&compare, &a, &b, Some(&b)), Verdict::Noise);
        }
    }
});
