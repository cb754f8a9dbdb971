//! split-mirror: an Envoy / Istio Wasm filter that splits traffic between backends by weight
//! (through a route header that Envoy's `cluster_header` or an Istio VirtualService matches)
//! and mirrors a share of requests to shadow clusters.
//!
//! Everything except [`adapter`] is plain Rust that never calls the host, so it is unit-tested
//! natively with `cargo test`. `adapter` is the only module that talks to proxy-wasm.

#[cfg(not(target_arch = "wasm32"))]
pub mod check;
pub mod compare;
pub mod config;
pub mod hash;
pub mod hosts;
#[cfg(not(target_arch = "wasm32"))]
pub mod import;
pub mod keys;
pub mod metrics;
pub mod mirror;
pub mod proxy;
pub mod random;
pub mod rollout;
pub mod route_index;
pub mod routing;
pub mod tcp;
pub mod weights;
pub mod worker;

#[cfg(target_arch = "wasm32")]
mod adapter;
