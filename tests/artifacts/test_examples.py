"""The runnable examples: every step's filter configuration passes `envoy --mode validate` inside
the shipped front proxy config, and each scenario plays through the native harness."""
import copy
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

from support import REPO, envoy_validate, require_wasm

EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/scenario.json"))
HARNESS = REPO / "tools/harness.py"


def front_with(filter_config):
    """envoy/envoy.yaml with its filter configuration replaced."""
    config = yaml.safe_load((REPO / "envoy/envoy.yaml").read_text())
    listener = config["static_resources"]["listeners"][0]
    for http_filter in listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]:
        if http_filter["typed_config"]["@type"].endswith("wasm.v3.Wasm"):
            http_filter["typed_config"]["config"]["configuration"]["value"] = json.dumps(filter_config)
    return config


class Examples(unittest.TestCase):
    def test_the_seed_scenarios_and_shadow_compare_are_shipped_with_a_readme(self):
        names = [p.name for p in EXAMPLES]
        self.assertEqual(["argo-steps", "istio-mirror", "knative-tags", "shadow-compare", "smi-canary"], names)
        for example in EXAMPLES:
            self.assertTrue((example / "README.md").exists(), f"{example.name} has no README.md")

    def test_every_step_config_passes_envoy_validate(self):
        for example in EXAMPLES:
            scenario = json.loads((example / "scenario.json").read_text())
            for step in scenario["steps"]:
                with self.subTest(example=example.name, step=step["title"]):
                    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=REPO / "target") as file:
                        json.dump(front_with(step["config"]), file)
                        file.flush()
                        result = envoy_validate(pathlib.Path(file.name))
                    self.assertEqual(0, result.returncode, result.stdout + result.stderr)

    def test_a_bad_step_config_is_refused_with_the_filter_message(self):
        broken = {"routes": [{"name": "httpbin", "backends": [{"cluster": "httpbin-v1", "weight": -5}]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=REPO / "target") as file:
            json.dump(front_with(broken), file)
            file.flush()
            result = envoy_validate(pathlib.Path(file.name))
        self.assertNotEqual(0, result.returncode)
        self.assertIn('route "httpbin": backends[0].weight: expected an integer 0..=1000000, got -5',
                      result.stdout + result.stderr)

    def play(self, *arguments):
        require_wasm()
        return subprocess.run([sys.executable, str(HARNESS), "demo", "--port-offset", "21000", *arguments],
                              cwd=REPO, capture_output=True, text=True, timeout=180)

    def test_each_scenario_plays_through_the_native_harness(self):
        for example in EXAMPLES:
            with self.subTest(example=example.name):
                result = self.play("--example", example.name, "--quick")
                self.assertEqual(0, result.returncode, result.stdout + result.stderr)
                self.assertIn("non-200 responses: 0", result.stdout)
                self.assertNotIn("REJECTED", result.stdout)
                if example.name == "knative-tags":
                    self.assert_tagged_requests_are_apart(result.stdout)

    def assert_tagged_requests_are_apart(self, output):
        """Each step sends 10 untagged and 30 tagged requests (10 current, 20 candidate): the
        chart compares only the 10 drawn by weight with the weights, the tagged ones apart."""
        steps = output.split("\n== ")[1:]
        self.assertEqual(3, len(steps), output)
        expected = [("100.0", "100.0", "0.0", "0.0"), ("50.0", None, "50.0", None), ("0.0", "0.0", "100.0", "100.0")]
        for step, (v1_weight, v1_share, v2_weight, v2_share) in zip(steps, expected):
            v1 = re.search(r"httpbin-v1\s+([\d.]+) %\s+([\d.]+) %\s+(\d+)", step)
            v2 = re.search(r"httpbin-v2\s+([\d.]+) %\s+([\d.]+) %\s+(\d+)", step)
            self.assertEqual((v1_weight, v2_weight), (v1.group(1), v2.group(1)), step)
            self.assertEqual(10, int(v1.group(3)) + int(v2.group(3)), step)
            for share, match in ((v1_share, v1), (v2_share, v2)):
                if share is not None:
                    self.assertEqual(share, match.group(2), step)
            self.assertIn("the 10 of 40 requests routed by weight; the other 30:", step)
            self.assertRegex(step, r"\n  by tag\s+httpbin-v1 10, httpbin-v2 20\n")

    def test_plain_demo_shows_the_shipped_split(self):
        result = self.play("--requests", "200")
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"httpbin-v1\s+80\.0 %")
        self.assertRegex(result.stdout, r"mirror httpbin-shadow: \d+ copies received")


if __name__ == "__main__":
    unittest.main()
