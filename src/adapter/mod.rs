//! The only code that calls proxy-wasm: the root context (configuration) and the HTTP context
//! (per request). Everything it decides comes from the pure modules.

mod counters;
mod host;
mod http;
mod root;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(root::SplitMirrorRoot::default()));
}}

/// A line in Envoy's log. The filter logs only a refused configuration and host failures, so it
/// calls the host directly: the `log` crate with the SDK's logger and panic hook cost 3 KB of
/// module. (A panic, which clippy denies outside tests, still reaches Envoy's log: Rust's
/// default hook writes it to WASI stderr, which Envoy logs as an error.)
fn log(level: proxy_wasm::types::LogLevel, message: &str) {
    // If the host cannot log there is nowhere to report that either.
    let _ = proxy_wasm::hostcalls::log(level, message);
}
