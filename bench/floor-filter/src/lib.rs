//! The floors the benchmark compares split-mirror with: the least a proxy-wasm filter can do for
//! each job, written against the raw ABI 0.2.1 so that no SDK, allocator or state adds to the
//! cost it measures.
//!
//! - default: the split. Request headers (the one callback a filter needs: even context creation
//!   is left unexported, Envoy then skips it), one 80/20 draw and one header write for
//!   `cluster_header` (variant m).
//! - feature `empty`: request headers seen, nothing done (variant n).
//! - feature `mirror`: the split plus a copy of every request's headers sent to the `shadow`
//!   cluster by the filter itself, owned by the root context so it outlives the request, as a
//!   fire-and-forget mirror must (variant k). No in-flight cap, no body, no bookkeeping.
//! - feature `mirror-header`: the split plus a second header naming the shadow cluster, for
//!   Envoy's `request_mirror_policies` with `cluster_header` to send the copy (variant j).
#![no_std]

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

const REQUEST_HEADERS: u32 = 0;
const CONTINUE: u32 = 0;
const CLUSTER_HEADER: &[u8] = b"x-split-cluster";
const SHADOW_CLUSTER: &[u8] = b"shadow";
const SHADOW_TIMEOUT_MS: u32 = 5_000;
const MIRROR_HEADER: &[u8] = b"x-split-mirror-cluster";

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, len: *mut usize) -> u32;
    fn proxy_set_effective_context(context: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_http_call(
        upstream: *const u8,
        upstream_len: usize,
        headers: *const u8,
        headers_len: usize,
        body: *const u8,
        body_len: usize,
        trailers: *const u8,
        trailers_len: usize,
        timeout_ms: u32,
        token: *mut u32,
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

/// The host's copies (the request's header pairs) land here: a bump arena, emptied before each
/// read, since nothing it holds outlives the callback that read it.
const ARENA_SIZE: usize = 64 * 1024;
static mut ARENA: [u8; ARENA_SIZE] = [0; ARENA_SIZE];
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let start = ARENA_USED.load(Ordering::Relaxed);
    if size > ARENA_SIZE - start {
        return core::ptr::null_mut();
    }
    ARENA_USED.store(start + size, Ordering::Relaxed);
    // SAFETY: a single-threaded VM; [start, start + size) is handed out once per callback.
    unsafe { core::ptr::addr_of_mut!(ARENA).cast::<u8>().add(start) }
}

/// The root context's id, which owns the shadows.
static ROOT: AtomicU32 = AtomicU32::new(0);

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_context: u32, _size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root: u32, _size: usize) -> u32 {
    ROOT.store(root, Ordering::Relaxed);
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
    write_header(CLUSTER_HEADER, cluster);
    if cfg!(feature = "mirror-header") {
        write_header(MIRROR_HEADER, SHADOW_CLUSTER);
    }
    if cfg!(feature = "mirror") {
        send_shadow();
    }
    CONTINUE
}

fn write_header(name: &[u8], value: &[u8]) {
    // SAFETY: both slices outlive the call; the host copies them.
    unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        );
    }
}

/// The request's headers, read in the host's serialized form and passed back unchanged as the
/// shadow's: the least copying a filter-sent mirror can do.
fn send_shadow() {
    ARENA_USED.store(0, Ordering::Relaxed);
    let mut pairs: *mut u8 = core::ptr::null_mut();
    let mut len = 0usize;
    let mut token = 0u32;
    // SAFETY: every pointer is to memory that outlives the call; the host copies what it reads.
    unsafe {
        if proxy_get_header_map_pairs(REQUEST_HEADERS, &mut pairs, &mut len) != 0 || pairs.is_null()
        {
            return;
        }
        proxy_set_effective_context(ROOT.load(Ordering::Relaxed));
        proxy_http_call(
            SHADOW_CLUSTER.as_ptr(),
            SHADOW_CLUSTER.len(),
            pairs,
            len,
            core::ptr::null(),
            0,
            core::ptr::null(),
            0,
            SHADOW_TIMEOUT_MS,
            &mut token,
        );
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
