//! The network filter (`root_id` `split-mirror-tcp`, before `tcp_proxy`): one VM entry per
//! connection (`on_new_connection`), no payload read, no per-packet callback. The choosing is
//! `tcp::connection`'s; the cluster reaches `tcp_proxy` through the `envoy.tcp_proxy.cluster`
//! filter state.

use super::abi;
use super::wasm_proxy::WasmProxy;
use crate::proxy::Refused;
use crate::tcp::connection::{Connection, TcpWorker};
use crate::tcp::filter_state::SET_ENVOY_FILTER_STATE;
use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

/// One downstream connection.
pub struct SplitMirrorTcp {
    worker: Option<Rc<TcpWorker>>,
}

impl SplitMirrorTcp {
    pub fn new(worker: Option<Rc<TcpWorker>>) -> Self {
        SplitMirrorTcp { worker }
    }
}

impl Connection for SplitMirrorTcp {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        abi::property(path).ok().flatten()
    }

    fn set_filter_state(&self, arguments: &[u8]) -> Result<(), Refused> {
        abi::call_foreign_function(SET_ENVOY_FILTER_STATE, arguments)
    }
}

impl Context for SplitMirrorTcp {}

impl StreamContext for SplitMirrorTcp {
    fn on_new_connection(&mut self) -> Action {
        if let Some(worker) = &self.worker {
            worker.on_connection(&WasmProxy, self);
        }
        Action::Continue
    }
}
