//! The only code that calls proxy-wasm: the root context (configuration) and the HTTP context
//! (per request). Everything it decides comes from the pure modules.

mod counters;
mod host;
mod http;
mod root;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::SplitMirrorRoot::default()));
}}
