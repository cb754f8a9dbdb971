"""The module names no builder's path (the Makefile remaps them), so its bytes, sha256 and OCI
digest do not depend on who built it. `make reproducible` (CI) also builds it a second time
elsewhere and compares; this is the fast part, on the module `make build` made."""
import pathlib
import sys
import unittest

from support import REPO, WASM, require_wasm

sys.path.insert(0, str(REPO / "tools"))
import reproducible  # noqa: E402


class BuilderPaths(unittest.TestCase):
    def test_built_module_names_no_builder_path(self):
        require_wasm()
        module = WASM.read_bytes()
        self.assertEqual([], reproducible.absolute_paths(module, [reproducible.cargo_home(), REPO]),
                         "build with `make build` (it remaps the checkout and CARGO_HOME)")
        # The remapped dependency paths are there: the check looks at the right strings.
        self.assertIn(b"cargo/registry/src/", module)

    def test_a_registry_or_checkout_path_is_found(self):
        module = (b"\0asm\x01\0\0\0\x05/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/"
                  b"proxy-wasm-0.2.5/src/traits.rs\0cargo/registry/src/x.rs\0/rustc/abc/library/core/src/lib.rs\0"
                  b"/opt/build/checkout/src/lib.rs")
        found = reproducible.absolute_paths(module, [pathlib.Path("/opt/build/checkout")])
        self.assertEqual(["/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/proxy-wasm-0.2.5/src/traits.rs",
                          "/opt/build/checkout/src/lib.rs"], found)
        self.assertEqual([], reproducible.absolute_paths(b"cargo/registry/src/x.rs\0/rustc/abc/lib.rs\0/; Path=/"))


if __name__ == "__main__":
    unittest.main()
