//! The floor of a cluster_header split: the proxy-wasm callbacks Envoy needs (context create,
//! request headers) and one header write, nothing else. With feature `empty`, no write: the floor
//! of any filter that sees the request headers. Written against the raw ABI 0.2.1 so that
//! neither an SDK nor an allocator adds to the cost it measures.
#![no_std]

use core::sync::atomic::{AtomicU64, Ordering};

const REQUEST_HEADERS: u32 = 0;
const CONTINUE: u32 = 0;
const CLUSTER_HEADER: &[u8] = b"x-split-cluster";

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
}

/// xorshift64: the draw (a single-threaded VM, so relaxed loads and stores are enough).
static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

fn draw_percent() -> u64 {
    let mut x = STATE.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x % 100
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Envoy requires an allocator export; this filter never asks the host for data.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(_size: usize) -> *mut u8 {
    core::ptr::null_mut()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context: u32, _parent: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_context: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_context: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    _context: u32,
    _headers: usize,
    _end_of_stream: u32,
) -> u32 {
    if cfg!(feature = "empty") {
        return CONTINUE;
    }
    let cluster: &[u8] = if draw_percent() < 80 { b"v1" } else { b"v2" };
    // SAFETY: both slices outlive the call; the host copies them.
    unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            CLUSTER_HEADER.as_ptr(),
            CLUSTER_HEADER.len(),
            cluster.as_ptr(),
            cluster.len(),
        );
    }
    CONTINUE
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
