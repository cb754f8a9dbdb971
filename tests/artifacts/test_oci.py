"""`make oci` (tools/oci.py): Istio's Wasm image as an OCI image layout, built without a Docker
engine. Checks the layout blob by blob, reads it back the way Istio's image fetcher does, and
proves the output is deterministic."""
import gzip
import hashlib
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import unittest

from support import REPO, WASM, require_wasm

OCI = REPO / "tools/oci.py"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
# The smallest valid module: the magic number and version 1.
TINY_WASM = b"\0asm\x01\0\0\0"


def run_oci(*arguments):
    return subprocess.run([sys.executable, str(OCI), *arguments], capture_output=True, text=True, timeout=60)


def read_blob(layout: pathlib.Path, descriptor: dict) -> bytes:
    algorithm, hex_digest = descriptor["digest"].split(":")
    assert algorithm == "sha256", descriptor
    data = (layout / "blobs/sha256" / hex_digest).read_bytes()
    assert len(data) == descriptor["size"], f"{descriptor['digest']}: {len(data)} bytes, not {descriptor['size']}"
    assert hashlib.sha256(data).hexdigest() == hex_digest, f"{descriptor['digest']}: content has another digest"
    return data


def istio_fetch(layout: pathlib.Path, tag: str) -> bytes:
    """The module as Istio's image fetcher (istio/istio pkg/wasm/imagefetcher.go) gets it from this
    image once pushed: a Docker manifest is read as the Docker compat variant; otherwise the last
    layer must be an OCI tar+gzip layer (compat variant) holding a file whose base name is
    plugin.wasm; the "oci" variant (two layers, application/vnd.module.wasm.content.layer.v1+wasm)
    is tried only if that fails, and is not what we build."""
    index = json.loads((layout / "index.json").read_text())
    (descriptor,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
    manifest = json.loads(read_blob(layout, descriptor))
    assert manifest.get("mediaType") != DOCKER_MANIFEST_TYPE
    last = manifest["layers"][-1]
    assert last["mediaType"] == LAYER_TYPE, last["mediaType"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(read_blob(layout, last)))) as tar:
        for member in tar:
            if pathlib.PurePosixPath(member.name).name == "plugin.wasm":
                return tar.extractfile(member).read()
    raise AssertionError("plugin.wasm not found in the layer")


class OciLayout(unittest.TestCase):
    def build(self, out, wasm=WASM, tag="0.1.0"):
        if wasm == WASM:
            require_wasm()
        result = run_oci("--wasm", str(wasm), "--out", str(out), "--tag", tag)
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        index = json.loads((out / "index.json").read_text())
        self.assertEqual(1, len(index["manifests"]))
        descriptor = index["manifests"][0]
        self.assertIn(descriptor["digest"], result.stdout, "the manifest digest is printed")
        return descriptor

    def test_layout_index_manifest_config_and_layer(self):
        with tempfile.TemporaryDirectory() as directory:
            out = pathlib.Path(directory) / "oci"
            descriptor = self.build(out)
            self.assertEqual({"imageLayoutVersion": "1.0.0"}, json.loads((out / "oci-layout").read_text()))
            index = json.loads((out / "index.json").read_text())
            self.assertEqual(2, index["schemaVersion"])
            self.assertEqual(MANIFEST_TYPE, descriptor["mediaType"])
            self.assertEqual("0.1.0", descriptor["annotations"]["org.opencontainers.image.ref.name"])

            manifest = json.loads(read_blob(out, descriptor))
            self.assertEqual(2, manifest["schemaVersion"])
            self.assertEqual(MANIFEST_TYPE, manifest["mediaType"])
            self.assertEqual(CONFIG_TYPE, manifest["config"]["mediaType"])
            self.assertEqual("compat", manifest["annotations"]["module.wasm.image/variant"])
            (layer,) = manifest["layers"]
            self.assertEqual(LAYER_TYPE, layer["mediaType"])

            compressed = read_blob(out, layer)
            self.assertEqual(b"\x1f\x8b\x08", compressed[:3])
            self.assertEqual(b"\0\0\0\0", compressed[4:8], "gzip header time must be 0")
            self.assertEqual(0, compressed[3], "gzip header must carry no file name")
            tar_bytes = gzip.decompress(compressed)

            config = json.loads(read_blob(out, manifest["config"]))
            self.assertEqual({"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]},
                             config["rootfs"])
            self.assertTrue(config["architecture"] and config["os"])

            with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
                (member,) = tar.getmembers()
                self.assertEqual("plugin.wasm", member.name)
                self.assertTrue(member.isreg())
                self.assertEqual((0, 0, 0, 0o644), (member.mtime, member.uid, member.gid, member.mode))
                self.assertEqual(WASM.read_bytes(), tar.extractfile(member).read())

            referenced = {d["digest"].split(":")[1] for d in (descriptor, manifest["config"], layer)}
            self.assertEqual(referenced, {p.name for p in (out / "blobs/sha256").iterdir()}, "stray or missing blobs")

    def test_istio_fetcher_finds_the_module_byte_for_byte(self):
        with tempfile.TemporaryDirectory() as directory:
            out = pathlib.Path(directory)
            self.build(out, tag="test")
            self.assertEqual(WASM.read_bytes(), istio_fetch(out, "test"))

    def test_same_module_same_digest(self):
        with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
            a, b = pathlib.Path(first), pathlib.Path(second)
            self.assertEqual(self.build(a)["digest"], self.build(b)["digest"])
            files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
            self.assertEqual(files, sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()))
            for path in files:
                self.assertEqual((a / path).read_bytes(), (b / path).read_bytes(), path)

    def test_rebuild_replaces_the_image_and_drops_old_blobs(self):
        with tempfile.TemporaryDirectory() as directory:
            root = pathlib.Path(directory)
            tiny = root / "tiny.wasm"
            tiny.write_bytes(TINY_WASM)
            out = root / "oci"
            first = self.build(out, wasm=tiny, tag="0.0.1")
            second = self.build(out, wasm=tiny, tag="0.0.1")
            self.assertEqual(first["digest"], second["digest"])
            tiny.write_bytes(TINY_WASM + b"\0")
            third = self.build(out, wasm=tiny, tag="0.0.2")
            self.assertNotEqual(first["digest"], third["digest"])
            self.assertEqual(3, len(list((out / "blobs/sha256").iterdir())), "the first image's blobs are gone")
            self.assertEqual(TINY_WASM + b"\0", istio_fetch(out, "0.0.2"))

    def test_refusals(self):
        with tempfile.TemporaryDirectory() as directory:
            root = pathlib.Path(directory)
            missing = run_oci("--wasm", str(root / "missing.wasm"), "--out", str(root / "oci"))
            self.assertEqual(2, missing.returncode)
            self.assertIn("run `make build`", missing.stderr)

            not_wasm = root / "not.wasm"
            not_wasm.write_bytes(b"#!/bin/sh\n")
            result = run_oci("--wasm", str(not_wasm), "--out", str(root / "oci"))
            self.assertEqual(1, result.returncode)
            self.assertIn("magic number", result.stderr)

            tiny = root / "tiny.wasm"
            tiny.write_bytes(TINY_WASM)
            result = run_oci("--wasm", str(tiny), "--out", str(root / "oci"), "--tag", "no/slash")
            self.assertEqual(1, result.returncode)
            self.assertIn("invalid tag", result.stderr)

            # Never writes into (or prunes) a directory that is not an OCI layout.
            precious = root / "home"
            precious.mkdir()
            (precious / "notes.txt").write_text("keep me")
            result = run_oci("--wasm", str(tiny), "--out", str(precious))
            self.assertEqual(1, result.returncode)
            self.assertIn("not an OCI image layout", result.stderr)
            self.assertEqual(["notes.txt"], [p.name for p in precious.iterdir()])

    def test_dockerfile_builds_the_same_image_shape(self):
        lines = [line.split() for line in (REPO / "examples/istio/Dockerfile").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        self.assertEqual([["FROM", "scratch"], ["COPY", "split_mirror.wasm", "./plugin.wasm"]], lines)


if __name__ == "__main__":
    unittest.main()
