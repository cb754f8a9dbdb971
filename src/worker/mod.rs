//! One worker's state for one configuration (a proxy-wasm VM is one worker thread), shared by
//! the root context and the request contexts, and what they do with it: choose and count
//! (`request`), queue and send shadows (`copy`, `shadows`), run comparisons (`comparisons`),
//! keep the rollouts. Plain logic over `proxy::Proxy`; `adapter` turns proxy-wasm callbacks
//! into these calls.

mod comparisons;
mod copy;
mod counters;
mod request;
mod shadows;
mod state;

pub use copy::MirrorCopy;
pub use request::Routed;
pub use state::Worker;

#[cfg(test)]
mod tests;
