"""The docs cannot go stale silently: the configuration reference against the published JSON Schema,
the metrics page against the names the filter builds, and every relative link against the files.

The conventions a writer keeps (each check's failure message repeats its own):

1. docs/configuration.md names every property of schema/split-mirror.schema.json by its full path
   in backticks in the first cell of a row of a table whose first header cell is `field`:
   `routes[].mirrors[].compare.body` (`[]` for an array's items, `.` between keys). A property with
   a fixed set of values (a JSON Schema `enum`, such as `compare.body`) names each value in
   backticks in that same row. Conversely, every path in such a first cell is one the schema has.
2. docs/metrics.md names every metric the filter builds in src/ (outside test code: a string
   literal that starts with `split_mirror_`, whole: `split_mirror_requests_total;route={route};...`)
   in backticks in the first cell of a table row, and each of its labels (`;key=` in the name) in backticks in that
   same row. Conversely, every `split_mirror_` name in such a first cell is one src/ builds.
3. Every relative link (`[text](target)`) in README.md, docs/*.md and examples/*/README.md, outside
   code, points to a file or folder that exists, and its `#anchor`, if any, to a heading of the
   target Markdown file (GitHub's anchors: lower case, punctuation dropped, spaces as `-`).
"""

import json
import re
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schema" / "split-mirror.schema.json"
CONFIGURATION = REPO / "docs" / "configuration.md"
METRICS = REPO / "docs" / "metrics.md"

BACKTICKED = re.compile(r"`([^`]+)`")


def schema_fields(schema):
    """{path: enum values or ()} for every property, nested through `$ref`, `anyOf` and `items`."""
    definitions = schema.get("$defs", {})
    fields = {}

    def walk(node, path, seen):
        reference = node.get("$ref")
        if reference:
            name = reference.rsplit("/", 1)[-1]
            if name not in seen:
                walk(definitions[name], path, seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for alternative in node.get(key, []):
                walk(alternative, path, seen)
        if "enum" in node and path:
            fields[path] = tuple(value for value in node["enum"] if value is not None)
        for key, child in node.get("properties", {}).items():
            child_path = f"{path}.{key}" if path else key
            fields.setdefault(child_path, ())
            walk(child, child_path, seen)
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]", seen)

    walk(schema, "", frozenset())
    return fields


def outside_code(text):
    """The Markdown text with fenced code blocks blanked out (line numbers kept)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return "\n".join(lines)


def table_rows(text):
    """(header's first cell, row's cells) for every body row of every Markdown table."""
    rows, header = [], None
    for line in outside_code(text).splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            header = None
            continue
        # `\|` inside a cell is a literal bar (Istio cluster names), not a cell boundary.
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", stripped.strip("|"))]
        if header is None:
            header = cells[0]
        elif not re.fullmatch(r"[-:| ]+", stripped):
            rows.append((header, cells))
    return rows


def is_test_source(path):
    return path.name == "tests.rs" or path.stem.endswith("_tests") or "tests" in path.parent.parts


def non_test_lines(text):
    """(line number, line) of a Rust file up to its inline test module (`#[cfg(test)]` at the top
    level followed by `mod name {`), comment lines left out."""
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if line.startswith("#[cfg(test)]"):
            following = next((later for later in lines[number:] if later.strip()), "")
            if re.match(r"(pub(\(\w+\))? )?mod \w+ \{", following):
                return
        if not line.lstrip().startswith("//"):
            yield number, line


def metric_names(source_root):
    """{metric name: label keys} for every string literal in src/ (tests left out) that starts
    with `split_mirror_`, and the places where a name is built from pieces."""
    metrics, pieces = {}, []
    for path in sorted(source_root.rglob("*.rs")):
        if is_test_source(path.relative_to(source_root)):
            continue
        for number, line in non_test_lines(path.read_text()):
            for kind, name, labels in metric_literals(line):
                if kind == "pieces":
                    pieces.append(f"{path.relative_to(source_root.parent)}:{number}")
                else:
                    metrics.setdefault(name, set()).update(labels)
    return metrics, pieces


def metric_literals(line):
    """("metric", name, labels) for a string literal holding a whole metric name (alone, or with
    `;key=` labels); ("pieces", name, ()) for one that starts a name to be completed elsewhere
    (`"split_mirror_"`, `"split_mirror_{kind}_total"`). A literal that only mentions a name (a
    PromQL query or selector: `"split_mirror_x{{route=...}}"`, or an escaped quote inside another
    string) is neither."""
    found = []
    for name, rest in re.findall(r'(?<!\\)"(split_mirror_[A-Za-z0-9_]*)((?:[^"\\]|\\.)*)"', line):
        if name.endswith("_") or (rest.startswith("{") and not rest.startswith("{{")):
            found.append(("pieces", name, ()))
        elif rest == "" or rest.startswith(";"):
            found.append(("metric", name, tuple(re.findall(r";([A-Za-z_]+)=", rest))))
    return found


def github_anchor(heading):
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces
    as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown):
    found, counts = set(), {}
    for line in outside_code(markdown).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        anchor = github_anchor(match.group(1))
        count = counts.get(anchor, 0)
        counts[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def documents():
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
            *sorted((REPO / "examples").glob("*/README.md"))]


def relative_links(markdown):
    """(line number, target) of every inline link outside code blocks and code spans."""
    links = []
    for number, line in enumerate(outside_code(markdown).splitlines(), 1):
        line = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line):
            if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):
                links.append((number, target))
    return links


def broken_links(document):
    broken = []
    for number, target in relative_links(document.read_text()):
        file_part, _, anchor = target.partition("#")
        destination = (document.parent / file_part).resolve() if file_part else document
        where = f"{document.relative_to(REPO)}:{number}: ({target})"
        if not destination.exists():
            broken.append(f"{where}: no file {file_part}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination.read_text()):
            broken.append(f"{where}: {destination.relative_to(REPO)} has no heading #{anchor}")
    return broken


class ConfigurationReference(unittest.TestCase):
    maxDiff = None

    def test_every_schema_field_is_described(self):
        fields = schema_fields(json.loads(SCHEMA.read_text()))
        rows = {}
        for header, cells in table_rows(CONFIGURATION.read_text()):
            if header.strip("`*").lower() == "field":
                for path in BACKTICKED.findall(cells[0]):
                    rows[path] = " | ".join(cells)
        missing = sorted(path for path in fields if path not in rows)
        self.assertEqual(missing, [], "docs/configuration.md: each schema field needs a row of a "
                         "`field` table naming its full path in backticks (e.g. `routes[].name`)")
        for path, values in fields.items():
            documented = set(BACKTICKED.findall(rows[path]))
            undocumented = [value for value in values
                            if str(value) not in documented and json.dumps(value) not in documented]
            self.assertEqual(undocumented, [], f"docs/configuration.md: the row of `{path}` must "
                             "name each of its values in backticks")
        unknown = sorted(path for path in rows if path not in fields)
        self.assertEqual(unknown, [], "docs/configuration.md documents fields the schema does not have")

    def test_the_schema_walk_sees_nested_fields_and_values(self):
        """The check above is only as good as this walk: it must reach fields behind `$ref` and
        array items, and the values of an enum."""
        fields = schema_fields(json.loads(SCHEMA.read_text()))
        self.assertIn("routes[].mirrors[].compare.baseline", fields)
        self.assertIn("tcp_routes[].sticky.source_address", fields)
        self.assertEqual(set(fields["routes[].mirrors[].compare.body"]), {"none", "exact", "json"})


class MetricsReference(unittest.TestCase):
    maxDiff = None

    def test_every_metric_is_described_with_its_labels(self):
        metrics, pieces = metric_names(REPO / "src")
        self.assertEqual(pieces, [], "a metric name is built from pieces there: write it whole in "
                         "one string literal (`split_mirror_x_total;route={route}`) so this test "
                         "can read it, or teach metric_names() the new form")
        self.assertGreater(len(metrics), 5, "too few metric names found in src/: did they move?")
        rows = {}
        for _, cells in table_rows(METRICS.read_text()):
            for name in BACKTICKED.findall(cells[0]):
                if name.startswith("split_mirror_"):
                    rows[name] = set(BACKTICKED.findall(" | ".join(cells[1:])))
        missing = sorted(name for name in metrics if name not in rows)
        self.assertEqual(missing, [], "docs/metrics.md: each metric needs a table row naming it in "
                         "backticks in its first cell")
        for name, labels in metrics.items():
            self.assertEqual(sorted(labels - rows[name]), [], f"docs/metrics.md: the row of `{name}` "
                             "must name each of its labels in backticks")
        unknown = sorted(name for name in rows if name not in metrics)
        self.assertEqual(unknown, [], "docs/metrics.md documents metrics src/ does not define")


class MetricCollection(unittest.TestCase):
    def test_definitions_are_told_from_mentions_and_test_code(self):
        """Tests may name made-up metrics; only the filter's own code counts."""
        source = ('const A: &str = "split_mirror_a_total;route={route}";\n'
                  '// "split_mirror_commented_total"\n'
                  '#[cfg(test)]\nmod tests;\n'
                  'const B: &str = "split_mirror_b_total";\n'
                  '#[cfg(test)]\nmod tests {\n    const C: &str = "split_mirror_made_up_total";\n}\n')
        found = [line for _, line in non_test_lines(source)]
        self.assertIn('const B: &str = "split_mirror_b_total";', found)
        self.assertFalse(any("made_up" in line or "commented" in line for line in found))
        self.assertEqual(metric_literals('format!("split_mirror_a_total;route={route};class={}")'),
                         [("metric", "split_mirror_a_total", ("route", "class"))])
        self.assertEqual(metric_literals('const N: &str = "split_mirror_gauge";'),
                         [("metric", "split_mirror_gauge", ())])
        self.assertEqual([kind for kind, _, _ in metric_literals('"split_mirror_" "split_mirror_{k}_total"')],
                         ["pieces", "pieces"])
        self.assertEqual(metric_literals('q("__name__=~\\"split_mirror_.+_total\\"") '
                                         'format!("split_mirror_b_total{{{}}}", m)'), [])
        self.assertTrue(is_test_source(Path("rollout/state_tests.rs")))
        self.assertTrue(is_test_source(Path("routing/index/tests.rs")))
        self.assertFalse(is_test_source(Path("metrics.rs")))


class Links(unittest.TestCase):
    maxDiff = None

    def test_relative_links_resolve(self):
        checked = documents()
        self.assertIn(REPO / "docs" / "configuration.md", checked)
        broken = [problem for document in checked for problem in broken_links(document)]
        self.assertEqual(broken, [], "relative links that point nowhere")

    def test_anchors_follow_githubs_rules(self):
        self.assertEqual(github_anchor("Comparing shadow answers (Diffy's method)"),
                         "comparing-shadow-answers-diffys-method")
        self.assertEqual(github_anchor("`rollout` steps and the guard"), "rollout-steps-and-the-guard")
        self.assertEqual(anchors("# A\n## A\n```\n# not a heading\n```\n"), {"a", "a-1"})


if __name__ == "__main__":
    unittest.main()
