//! The only code that calls proxy-wasm: it turns the host's callbacks into calls of the pure
//! modules (`worker`, `rollout::state`, `compare`, `mirror`), and implements their `Proxy`.
//! The root context (configuration, the tick, HTTP call answers), the HTTP context (per
//! request), and the network filter's connection context (`tcp`).

mod abi;
mod http;
mod root;
mod tcp;
mod wasm_proxy;

proxy_wasm::main! {{
    // The SDK's logger for the `log` crate, and its panic hook, which puts a panic's message in
    // Envoy's log. The level follows Envoy's at each configuration (`on_configure`).
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::SplitMirrorRoot::default()));
}}
