//! The only code that calls proxy-wasm: the root context (configuration) and the HTTP context
//! (per request), and the network filter's connection context (`tcp`). Everything it decides comes from the pure modules.

mod compare;
mod counters;
mod http;
mod root;
mod tcp;
mod wasm_proxy;
mod worker;

proxy_wasm::main! {{
    // The SDK's logger for the `log` crate, and its panic hook, which puts a panic's message in
    // Envoy's log. The level follows Envoy's at each configuration (`on_configure`).
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::SplitMirrorRoot::default()));
}}
