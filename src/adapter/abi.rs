//! The proxy-wasm ABI calls the filter makes, declared as the SDK declares them (enums as
//! `u32`) and wrapped so that every status the host may return comes back as an error. The
//! SDK's trait methods unwrap, and even its `hostcalls` panic on a status they do not expect
//! (a header read in a callback where the host has no such map, for instance): either traps
//! the VM. Buffers the host returns were allocated through the SDK's
//! `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes) and are taken back here.
//! HTTP calls stay with the SDK's `hostcalls::dispatch_http_call`: it registers the call's
//! token with the SDK's dispatcher, which routes the answer to the root context.

use crate::proxy::Refused;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::cell::Cell;
use std::ptr::null_mut;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        results: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

fn checked(status: u32) -> Result<(), Refused> {
    match status {
        OK => Ok(()),
        other => Err(Refused::status(other)),
    }
}

/// Runs a host call that returns a buffer: `Ok(None)` for `NotFound`; on `Ok` without a
/// buffer, `absent` (the SDK's readers differ: a header is then empty, a buffer absent).
fn returned(
    absent: Option<Vec<u8>>,
    call: impl FnOnce(*mut *mut u8, *mut usize) -> u32,
) -> Result<Option<Vec<u8>>, Refused> {
    let (mut data, mut size): (*mut u8, usize) = (null_mut(), 0);
    match call(&mut data, &mut size) {
        // SAFETY: on `Ok` the host wrote `size` bytes into a buffer it allocated through the
        // SDK's `proxy_on_memory_allocate`, a boxed slice of exactly `size` bytes: a `Vec` of
        // that length and capacity owns it, and frees it correctly.
        OK if !data.is_null() => Ok(Some(unsafe { Vec::from_raw_parts(data, size, size) })),
        OK => Ok(absent),
        NOT_FOUND => Ok(None),
        other => Err(Refused::status(other)),
    }
}

/// Milliseconds since the epoch by the host's clock.
pub fn now_ms() -> Result<u64, Refused> {
    let mut nanos = 0u64;
    // SAFETY: the host writes one u64 at the pointer.
    checked(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos / 1_000_000)
}

/// Envoy's log level; `None` if refused or unknown.
pub fn log_level() -> Option<LogLevel> {
    let mut level = 0u32;
    // SAFETY: the host writes one u32 at the pointer.
    checked(unsafe { proxy_get_log_level(&mut level) }).ok()?;
    [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Critical,
    ]
    .get(level as usize)
    .copied()
}

pub fn set_tick_ms(period_ms: u32) -> Result<(), Refused> {
    // SAFETY: no pointers.
    checked(unsafe { proxy_set_tick_period_milliseconds(period_ms) })
}

/// One header of `map`; `None` if absent.
pub fn header(map: MapType, name: &str) -> Result<Option<Vec<u8>>, Refused> {
    // SAFETY: the key is a live slice; see `returned` for the value.
    returned(Some(Vec::new()), |data, size| unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), data, size)
    })
}

/// Sets header `name` of `map` to `value`, or removes it (`None`).
pub fn set_header(map: MapType, name: &str, value: Option<&[u8]>) -> Result<(), Refused> {
    let (key, key_size) = (name.as_ptr(), name.len());
    // SAFETY: key and value are live slices the host only reads.
    checked(unsafe {
        match value {
            Some(value) => proxy_replace_header_map_value(
                map as u32,
                key,
                key_size,
                value.as_ptr(),
                value.len(),
            ),
            None => proxy_remove_header_map_value(map as u32, key, key_size),
        }
    })
}

/// Adds a value of header `name` of `map` (after those it has).
pub fn add_header(map: MapType, name: &str, value: &[u8]) -> Result<(), Refused> {
    // SAFETY: key and value are live slices the host only reads.
    checked(unsafe {
        proxy_add_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Every header of `map` in the host's serialized form (see `mirror::header_map`), in one
/// buffer: the SDK's reader would allocate a `String` and a `Vec` per header.
pub fn header_block(map: MapType) -> Result<Option<Vec<u8>>, Refused> {
    // SAFETY: see `returned`.
    returned(None, |data, size| unsafe {
        proxy_get_header_map_pairs(map as u32, data, size)
    })
}

/// `size` bytes of `buffer` from `start`.
pub fn buffer(buffer: BufferType, start: usize, size: usize) -> Result<Option<Vec<u8>>, Refused> {
    // SAFETY: see `returned`.
    returned(None, |data, out| unsafe {
        proxy_get_buffer_bytes(buffer as u32, start, size, data, out)
    })
}

/// A property's bytes by its path (`["connection", "requested_server_name"]`).
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Refused> {
    let path = path.join("\0");
    // SAFETY: the path is a live slice; see `returned` for the value.
    returned(None, |data, size| unsafe {
        proxy_get_property(path.as_ptr(), path.len(), data, size)
    })
}

/// The value at `key` in the shared data and its CAS token.
pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Refused> {
    let mut cas = 0u32;
    let found = Cell::new(true);
    // SAFETY: the key is a live slice; the host writes one u32 at `cas`; see `returned`.
    let value = returned(None, |data, size| {
        let status =
            unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), data, size, &mut cas) };
        found.set(status != NOT_FOUND);
        status
    })?;
    Ok((value, (found.get() && cas != 0).then_some(cas)))
}

/// Writes `value` at `key`; with a CAS token only if it is still current (0: unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Refused> {
    // SAFETY: key and value are live slices the host only reads.
    checked(unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    })
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, Refused> {
    let mut id = 0u32;
    // SAFETY: the name is a live slice; the host writes one u32 at `id`.
    checked(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, delta: i64) -> Result<(), Refused> {
    // SAFETY: no pointers.
    checked(unsafe { proxy_increment_metric(id, delta) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Refused> {
    // SAFETY: no pointers.
    checked(unsafe { proxy_record_metric(id, value) })
}

/// Calls the host's foreign function `name` with `arguments`; its result is dropped.
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<(), Refused> {
    let (mut data, mut size): (*mut u8, usize) = (null_mut(), 0);
    // SAFETY: name and arguments are live slices the host only reads; a result buffer is
    // taken back as in `returned`.
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    if status == OK && !data.is_null() {
        drop(unsafe { Vec::from_raw_parts(data, size, size) });
    }
    checked(status)
}

/// Says, at most once a second per worker, that the host refused a call the request path
/// made; the request goes on as if the call had not been made.
pub fn report(what: &str, refused: Refused) {
    thread_local! {
        static LAST_MS: Cell<Option<u64>> = const { Cell::new(None) };
    }
    let now = now_ms().unwrap_or(0);
    LAST_MS.with(|last| {
        if last.get().map_or(true, |at| now >= at + 1000) {
            last.set(Some(now));
            log::warn!(
                "split-mirror: the host refused {what} ({refused}); the request goes on without it"
            );
        }
    });
}

/// A header of `map`, `None` if absent or refused (reported).
pub fn read_header(map: MapType, name: &str) -> Option<Vec<u8>> {
    header(map, name).unwrap_or_else(|status| {
        report("a header read", status);
        None
    })
}

/// Sets (or, with `None`, removes) a header of `map`; a refusal is reported.
pub fn write_header(map: MapType, name: &str, value: Option<&[u8]>) {
    if let Err(status) = set_header(map, name, value) {
        report("a header write", status);
    }
}

/// A header of `map` as text (bytes that are not UTF-8 replaced), `None` if absent or refused.
pub fn read_text_header(map: MapType, name: &str) -> Option<String> {
    let value = read_header(map, name)?;
    Some(String::from_utf8_lossy(&value).into_owned())
}

/// `size` bytes of `kind` from its start, `None` if absent or refused (reported).
pub fn read_body(kind: BufferType, size: usize) -> Option<Vec<u8>> {
    buffer(kind, 0, size).unwrap_or_else(|status| {
        report("a body read", status);
        None
    })
}
