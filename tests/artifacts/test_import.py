"""What `split-mirror import` prints (the checked-in outputs of tests/import/) against the published
JSON Schema of the configuration, and its WasmPlugins against Istio's WasmPlugin schema (from
../shared, skipped saying where it looked when absent, as test_istio.py does)."""
import json
import unittest

import jsonschema
import yaml

from support import REPO
from test_istio import load_schema, schema_problems

SCHEMA = json.loads((REPO / "schema/split-mirror.schema.json").read_text())
CASES = sorted(p for p in (REPO / "tests/import").iterdir() if (p / "input.yaml").exists())


def outputs():
    """(case, configuration, plugin or None) for every fixture that printed something."""
    for case in CASES:
        text = (case / "stdout").read_text() if (case / "stdout").exists() else ""
        if not text:
            continue
        if text.lstrip().startswith("{"):
            yield case.name, json.loads(text), None
            continue
        for document in yaml.safe_load_all(text):
            if document.get("kind") == "WasmPlugin":
                yield case.name, document["spec"]["pluginConfig"], document
            elif "configuration" in document:
                yield case.name, json.loads(document["configuration"]["value"]), None


class ImportOutputs(unittest.TestCase):
    def test_there_are_outputs_of_every_shape(self):
        found = list(outputs())
        self.assertGreaterEqual(len(found), 13)
        self.assertTrue(any(plugin for _, _, plugin in found), "no WasmPlugin output")

    def test_every_imported_configuration_is_valid_for_the_schema(self):
        validator = jsonschema.Draft202012Validator(SCHEMA)
        for case, config, _ in outputs():
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(config)]
            self.assertEqual([], errors, case)

    def test_every_imported_wasmplugin_is_valid_for_istios_schema(self):
        schema = load_schema()
        for case, _, plugin in outputs():
            if plugin is not None:
                self.assertEqual([], schema_problems(plugin, schema), case)

    def test_bad_inputs_printed_nothing(self):
        for case in CASES:
            if case.name.startswith("bad-"):
                self.assertEqual("", (case / "stdout").read_text(), case.name)
                self.assertEqual("1\n", (case / "status").read_text(), case.name)


if __name__ == "__main__":
    unittest.main()
