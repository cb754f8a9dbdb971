"""The docker-compose harness: valid per the Compose Specification schema (the copy vendored in
PyPI's check-jsonschema), and running exactly the Envoy configs (and module path) the native
harness runs."""
import copy
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

import jsonschema
import yaml

from support import REPO, compose_spec_schema, envoy_bin, envoy_validate

COMPOSE = REPO / "envoy/compose.yaml"


def load_schema():
    import json

    return json.loads(compose_spec_schema().read_text())


def schema_errors(document, schema):
    validator_class = jsonschema.validators.validator_for(schema)
    return sorted(validator_class(schema).iter_errors(document), key=lambda e: list(e.path))


class ComposeHarness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.schema = load_schema()
        cls.compose = yaml.safe_load(COMPOSE.read_text())

    def test_compose_file_validates_against_the_compose_spec(self):
        errors = schema_errors(self.compose, self.schema)
        self.assertEqual([], [f"{list(e.path)}: {e.message}" for e in errors])

    def test_schema_is_the_compose_specification(self):
        self.assertEqual("Compose Specification", self.schema["title"])
        self.assertIn("services", self.schema["properties"])

    def test_check_jsonschema_cli_accepts_the_compose_file(self):
        """The check a user runs: `check-jsonschema --builtin-schema vendor.compose-spec`."""
        cli = pathlib.Path(sys.executable).parent / "check-jsonschema"
        self.assertTrue(cli.exists(), f"{cli} is missing: run `make envoy`")
        result = subprocess.run([str(cli), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as broken:
            broken.write(COMPOSE.read_text().replace("image:", "imagee:", 1))
            broken.flush()
            result = subprocess.run([str(cli), "--builtin-schema", "vendor.compose-spec", broken.name],
                                    capture_output=True, text=True, timeout=60)
        self.assertNotEqual(0, result.returncode, "check-jsonschema accepted an unknown service key")
        self.assertIn("imagee", result.stdout + result.stderr)

    def test_broken_copy_is_rejected_naming_the_field(self):
        broken = copy.deepcopy(self.compose)
        broken["services"]["front-proxy"]["imagee"] = "envoyproxy/envoy:v1.40.0"
        errors = schema_errors(broken, self.schema)
        self.assertTrue(errors, "the schema accepted an unknown service key")
        self.assertTrue(any("imagee" in e.message for e in errors), [e.message for e in errors])

        broken = copy.deepcopy(self.compose)
        broken["services"]["backends"]["network_mode"] = ["host"]
        self.assertTrue(schema_errors(broken, self.schema), "the schema accepted a list network_mode")

    def envoy_configs(self):
        """Each service's `-c` config, as a path relative to the repository root."""
        configs = {}
        for name, service in self.compose["services"].items():
            command = service["command"]
            configs[name] = command[command.index("-c") + 1]
        return configs

    def test_services_run_the_native_harness_configs(self):
        harness = (REPO / "tools/harness.py").read_text()
        for service, config in self.envoy_configs().items():
            self.assertTrue((REPO / config).exists(), f"{service}: {config} does not exist")
            self.assertIn(config, harness, f"{service}: the native harness does not run {config}")
            mounts = self.compose["services"][service]["volumes"]
            self.assertIn("/split-mirror/envoy", [m["target"] for m in mounts])
            self.assertEqual("/split-mirror", self.compose["services"][service]["working_dir"])

    def test_module_is_mounted_where_the_front_proxy_config_loads_it(self):
        front = yaml.safe_load((REPO / "envoy/envoy.yaml").read_text())
        filenames = re.findall(r"filename: (\S+)", (REPO / "envoy/envoy.yaml").read_text())
        self.assertEqual(["target/wasm32-wasip1/release/split_mirror.wasm"], filenames)
        mounts = self.compose["services"]["front-proxy"]["volumes"]
        wasm_mount = [m for m in mounts if m["target"].endswith(".wasm")]
        self.assertEqual(1, len(wasm_mount))
        self.assertEqual("/split-mirror/" + filenames[0], wasm_mount[0]["target"])
        self.assertTrue(wasm_mount[0]["read_only"])
        self.assertEqual("../" + filenames[0], wasm_mount[0]["source"])
        self.assertIn("static_resources", front)

    def test_image_matches_the_native_envoy_version(self):
        version = subprocess.run([str(envoy_bin()), "--version"], capture_output=True, text=True, timeout=30).stdout
        native = re.search(r"/(\d+\.\d+\.\d+)/", version).group(1)
        for name, service in self.compose["services"].items():
            self.assertEqual(f"envoyproxy/envoy:v{native}", service["image"], name)

    def test_every_mounted_envoy_config_passes_envoy_validate(self):
        for service, config in self.envoy_configs().items():
            result = envoy_validate(REPO / config)
            self.assertEqual(0, result.returncode, f"{service}: {config}\n{result.stdout}{result.stderr}")


if __name__ == "__main__":
    unittest.main()
