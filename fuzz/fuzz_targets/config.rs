//! The configuration parser and validator on arbitrary bytes: never panics; every refusal is
//! a message; an accepted config is internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use split_mirror::config::Config;

fuzz_target!(|data: &[u8]| {
    match Config::from_json(data) {
        Ok(config) => {
            assert!(!config.routes.is_empty());
            for route in &config.routes {
                assert!(!route.backends.is_empty());
                assert!(route.split.total() > 0);
                for rule in &route.overrides {
                    assert!(rule.backend < route.backends.len());
                }
            }
        }
        Err(error) => assert!(!error.0.is_empty()),
    }
});
