"""The published JSON Schema of the configuration (schema/split-mirror.schema.json) against every
configuration we ship, and `split-mirror check` (the filter's own validation) beside it: what the
examples hold is valid for both, and a few bad configurations are refused by both."""
import json
import pathlib
import subprocess
import tempfile
import unittest

import jsonschema
import yaml

from support import REPO

SCHEMA = json.loads((REPO / "schema/split-mirror.schema.json").read_text())


def shipped_configurations():
    """(place, configuration) for every example step, WasmPlugin pluginConfig and Envoy config."""
    for scenario in sorted((REPO / "examples").glob("*/scenario.json")):
        for i, step in enumerate(json.loads(scenario.read_text())["steps"]):
            yield f"{scenario.relative_to(REPO)} steps[{i}]", step["config"]
    for manifest in sorted((REPO / "examples").glob("**/*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            if document and document.get("kind") == "WasmPlugin":
                yield f"{manifest.relative_to(REPO)} {document['metadata']['name']}", document["spec"]["pluginConfig"]
    for envoy in sorted((REPO / "envoy").glob("*.yaml")):
        text = envoy.read_text()
        for document in yaml.safe_load_all(text):
            for value in envoy_configurations(document):
                yield f"{envoy.relative_to(REPO)}", json.loads(value)


def envoy_configurations(node):
    if isinstance(node, dict):
        configuration = node.get("configuration")
        if isinstance(configuration, dict) and configuration.get("@type", "").endswith("StringValue"):
            yield configuration["value"]
        for child in node.values():
            yield from envoy_configurations(child)
    elif isinstance(node, list):
        for child in node:
            yield from envoy_configurations(child)


def check(*files):
    return subprocess.run(
        ["cargo", "run", "--quiet", "--bin", "split-mirror", "--", "check", *map(str, files)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )


BAD = {
    "negative weight": {"routes": [{"name": "r", "backends": [{"cluster": "a", "weight": -5}]}]},
    "fractional weight": {"routes": [{"name": "r", "backends": [{"cluster": "a", "weight": 50.5}]}]},
    "unknown key": {"routes": [{"name": "r", "backends": [{"cluster": "a", "wieght": 5}]}]},
    "no routes": {"routes": []},
    "missing backends": {"routes": [{"name": "r"}]},
    "percent above 100": {"routes": [{"name": "r", "backends": [{"cluster": "a"}], "mirrors": [{"cluster": "s", "percent": 101}]}]},
    "routes not a list": {"routes": {"name": "r"}},
    # Rollouts, comparisons and TCP routes: each refused by the schema's own keywords (a bound,
    # an enum, an unknown key, a missing field) as well as by the filter.
    "rollout step above 100 %": {"routes": [{"name": "r", "backends": [{"cluster": "a"}, {"cluster": "b"}],
                                             "rollout": {"canary": "b", "start": "2026-12-01T10:00:00Z",
                                                         "steps": [{"weight": 120}]}}]},
    "rollout guard error rate above 1": {"routes": [{"name": "r", "backends": [{"cluster": "a"}, {"cluster": "b"}],
                                                     "rollout": {"canary": "b", "start": "2026-12-01T10:00:00Z",
                                                                 "steps": [{"weight": 10}],
                                                                 "guard": {"max_error_rate": 1.5}}}]},
    "rollout unknown key": {"routes": [{"name": "r", "backends": [{"cluster": "a"}, {"cluster": "b"}],
                                        "rollout": {"canary": "b", "start": "2026-12-01T10:00:00Z",
                                                    "steps": [{"weight": 10}], "pause": True}}]},
    "compare body mode unknown": {"routes": [{"name": "r", "backends": [{"cluster": "a"}],
                                              "mirrors": [{"cluster": "s", "compare": {"body": "xml"}}]}]},
    "compare unknown key": {"routes": [{"name": "r", "backends": [{"cluster": "a"}],
                                        "mirrors": [{"cluster": "s", "compare": {"header": ["etag"]}}]}]},
    "tcp route negative weight": {"tcp_routes": [{"name": "t", "backends": [{"cluster": "a", "weight": -1}]}]},
    "tcp route without backends": {"tcp_routes": [{"name": "t", "backends": []}]},
    "tcp sticky without source_address": {"tcp_routes": [{"name": "t", "backends": [{"cluster": "a"}], "sticky": {}}]},
}


class ConfigSchema(unittest.TestCase):
    def test_every_shipped_configuration_is_valid_for_the_schema(self):
        validator = jsonschema.Draft202012Validator(SCHEMA)
        places = []
        for place, config in shipped_configurations():
            places.append(place)
            with self.subTest(place=place):
                errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(config)]
                self.assertEqual([], errors)
        # The examples, the Istio manifests and the Envoy configs were all found.
        self.assertTrue(any("scenario.json" in p for p in places), places)
        self.assertTrue(any("wasmplugin" in p for p in places), places)
        self.assertTrue(any(p.startswith("envoy/") for p in places), places)

    def test_check_accepts_every_shipped_file(self):
        files = sorted((REPO / "examples").glob("*/scenario.json"))
        files += [p for p in sorted((REPO / "examples").glob("**/*.yaml")) if "kind: WasmPlugin" in p.read_text()]
        files += [REPO / "envoy/envoy.yaml"]
        result = check(*files)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertNotIn("invalid", result.stdout)
        self.assertIn("backends: ", result.stdout)

    def test_bad_configurations_are_refused_by_both(self):
        validator = jsonschema.Draft202012Validator(SCHEMA)
        with tempfile.TemporaryDirectory() as folder:
            for name, config in BAD.items():
                with self.subTest(name=name):
                    self.assertFalse(validator.is_valid(config), f"the schema accepts {config}")
                    path = pathlib.Path(folder) / "bad.json"
                    path.write_text(json.dumps(config))
                    result = check(path)
                    self.assertEqual(1, result.returncode, result.stdout + result.stderr)
                    self.assertIn("invalid configuration: ", result.stdout)

    def test_check_prints_the_error_envoy_would_log(self):
        with tempfile.TemporaryDirectory() as folder:
            path = pathlib.Path(folder) / "bad.json"
            path.write_text(json.dumps(BAD["negative weight"]))
            result = check(path)
        self.assertEqual(
            f"{path}: invalid configuration: route \"r\": backends[0].weight: expected an integer 0..=1000000, got -5\n",
            result.stdout,
        )


if __name__ == "__main__":
    unittest.main()
