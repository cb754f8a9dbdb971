"""`make build` trims the module's exports (tools/wasm_exports.py): Envoy calls only what is
exported, so the list must match the callbacks the adapter implements, no more and no less."""
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

from support import REPO, WASM, require_wasm

sys.path.insert(0, str(REPO / "tools"))
import wasm_exports  # noqa: E402
import wasm_link  # noqa: E402

# The SDK's trait method behind each exported callback (src/adapter implements them).
CALLBACK_EXPORTS = {
    "on_configure": "proxy_on_configure",
    "on_vm_start": "proxy_on_vm_start",
    "on_tick": "proxy_on_tick",
    "on_http_call_response": "proxy_on_http_call_response",
    "on_http_request_headers": "proxy_on_request_headers",
    "on_http_request_body": "proxy_on_request_body",
    "on_http_request_trailers": "proxy_on_request_trailers",
    "on_http_response_headers": "proxy_on_response_headers",
    "on_http_response_body": "proxy_on_response_body",
    "on_http_response_trailers": "proxy_on_response_trailers",
    "on_log": "proxy_on_log",
    "on_done": "proxy_on_done",
    "on_queue_ready": "proxy_on_queue_ready",
    "on_new_connection": "proxy_on_new_connection",
    "on_downstream_data": "proxy_on_downstream_data",
}
# Needed whatever the adapter implements: loading, memory, context life cycle.
ALWAYS = {"memory", "_initialize", "proxy_abi_version_0_2_1", "proxy_on_memory_allocate",
          "proxy_on_vm_start", "proxy_on_configure", "proxy_on_context_create", "proxy_on_delete"}


def implemented_callbacks():
    source = "\n".join(p.read_text() for p in (REPO / "src/adapter").glob("*.rs"))
    return {name for name in re.findall(r"fn (on_\w+)\(", source) if name in CALLBACK_EXPORTS}


class ModuleExports(unittest.TestCase):
    def test_built_module_exports_exactly_the_kept_callbacks(self):
        require_wasm()
        exports = {name for name, _, _ in wasm_exports.export_section(WASM.read_bytes())[0]}
        self.assertEqual(exports, set(wasm_exports.KEEP), "run `make build` (it trims the exports)")
        for unused in ("proxy_on_log", "proxy_on_done", "proxy_on_downstream_data"):
            self.assertNotIn(unused, exports)

    def test_every_implemented_callback_is_kept_and_nothing_else(self):
        wanted = ALWAYS | {CALLBACK_EXPORTS[name] for name in implemented_callbacks()}
        self.assertEqual(set(wasm_exports.KEEP), wanted,
                         "tools/wasm_exports.py KEEP must list exactly the callbacks src/adapter implements")

    def test_trimming_is_idempotent_and_refuses_a_missing_export(self):
        require_wasm()
        module = WASM.read_bytes()
        self.assertEqual(wasm_exports.keep_only(module, wasm_exports.KEEP), module)
        with self.assertRaisesRegex(ValueError, "proxy_on_renamed"):
            wasm_exports.keep_only(module, wasm_exports.KEEP + ("proxy_on_renamed",))

    def test_command_line_names_a_file_that_is_not_wasm(self):
        with tempfile.TemporaryDirectory() as folder:
            bad = pathlib.Path(folder) / "bad.wasm"
            bad.write_bytes(b"not wasm")
            run = subprocess.run([sys.executable, str(REPO / "tools/wasm_exports.py"), str(bad)],
                                 capture_output=True, text=True)
            self.assertNotEqual(run.returncode, 0)
            self.assertIn("bad.wasm: not a WebAssembly 1.0 module", run.stderr)


CODE_SECTION = 10
# V8 compiles each function of the module in every Envoy process; one 20 KB function (the whole
# configuration front end inlined into `Config::from_json`) cost ~7 MB of resident memory.
MAX_FUNCTION_BYTES = 8 * 1024


def function_body_sizes(module):
    _, body, _ = wasm_exports.section(module, CODE_SECTION, "code")
    count, cursor = wasm_exports.read_leb(module, body)
    sizes = []
    for _ in range(count):
        length, cursor = wasm_exports.read_leb(module, cursor)
        sizes.append(length)
        cursor += length
    return sizes


class ModuleFunctions(unittest.TestCase):
    def test_no_function_is_large_enough_to_cost_v8_megabytes(self):
        require_wasm()
        sizes = function_body_sizes(WASM.read_bytes())
        self.assertGreater(len(sizes), 100)
        self.assertLessEqual(max(sizes), MAX_FUNCTION_BYTES,
                             "a function of the module is over 8 KB: keep the configuration steps "
                             "out of line (see Config::from_json)")


class LinkerArguments(unittest.TestCase):
    """tools/wasm_link.py: what rustc asks the linker to export, minus the unused callbacks."""

    def test_drops_only_the_exports_of_callbacks_not_kept(self):
        args = ["-flavor", "wasm", "--export", "_initialize", "--export", "proxy_on_configure",
                "--export", "proxy_on_log", "--export", "proxy_on_downstream_data",
                "--export", "proxy_abi_version_0_2_1", "--gc-sections", "-o", "out.wasm"]
        self.assertEqual(wasm_link.without_unused_callbacks(args),
                         ["-flavor", "wasm", "--export", "_initialize", "--export", "proxy_on_configure",
                          "--export", "proxy_abi_version_0_2_1", "--gc-sections", "-o", "out.wasm"])

    def test_keeps_every_callback_in_keep_and_a_trailing_export_flag(self):
        kept = [name for name in wasm_exports.KEEP if name.startswith("proxy_on_")]
        args = [arg for name in kept for arg in ("--export", name)] + ["--export"]
        self.assertEqual(wasm_link.without_unused_callbacks(args), args)


if __name__ == "__main__":
    unittest.main()
