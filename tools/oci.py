#!/usr/bin/env python3
"""Builds Istio's Wasm plugin image as an OCI image layout, without a Docker engine.

    python3 tools/oci.py [--wasm target/wasm32-wasip1/release/split_mirror.wasm]
                         [--out target/oci] [--tag 0.1.0]

The image is the "compat" variant of the Wasm image specification that Istio's image fetcher
(istio/istio pkg/wasm/imagefetcher.go) accepts: an OCI manifest whose last (here: only) layer has
the media type `application/vnd.oci.image.layer.v1.tar+gzip` and holds the module as
`plugin.wasm`. It is what `docker build` makes of examples/istio/Dockerfile
(FROM scratch, COPY split_mirror.wasm ./plugin.wasm), less the build time stamps.

The output is deterministic: the tar entry has a fixed time, owner and mode, the gzip header has
no time or name, and the JSON documents are written with sorted keys. The same module therefore
always gives the same manifest digest (with the same zlib: a different deflate implementation,
such as zlib-ng, may compress differently). The digest is printed; it is what a WasmPlugin's
`sha256` pins for an `oci://` URL.

The directory holds one tag: index.json names only this build, and blobs no longer referenced
are removed. A directory that exists, is not empty and is not an OCI image layout is refused.

Push it with a registry tool, for example
    skopeo copy oci:target/oci:0.1.0 docker://REGISTRY/split-mirror:0.1.0
    oras cp --from-oci-layout target/oci:0.1.0 REGISTRY/split-mirror:0.1.0
    crane push target/oci REGISTRY/split-mirror:0.1.0
"""
import argparse
import hashlib
import io
import json
import os
import pathlib
import re
import struct
import sys
import tarfile
import zlib

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_WASM = REPO / "target/wasm32-wasip1/release/split_mirror.wasm"

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
# The file name Istio looks for in the layer (any directory; we put it at the root).
MODULE_NAME = "plugin.wasm"
# Istio never reads the image config. linux/amd64 is what `docker build` writes on the usual
# builder, and it is also the platform go-containerregistry (Istio's registry client) picks from
# an image index, should a tool ever wrap this image into one.
PLATFORM = {"architecture": "amd64", "os": "linux"}
# The distribution spec's tag grammar.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
WASM_MAGIC = b"\0asm"


class OciError(Exception):
    pass


def canonical_json(document) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def layer_tar(module: bytes) -> bytes:
    """An uncompressed tar holding only `plugin.wasm`: a regular file, every varying field fixed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(MODULE_NAME)
        info.size = len(module)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        tar.addfile(info, io.BytesIO(module))
    return buffer.getvalue()


def gzip_deterministic(data: bytes) -> bytes:
    """gzip (RFC 1952) with no name, time 0 and OS "unknown", whatever Python writes by default."""
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    body = compressor.compress(data) + compressor.flush()
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + body + trailer


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(data: bytes, media_type: str) -> dict:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def image(module: bytes):
    """The image's blobs (config, layer, manifest) and the manifest's descriptor."""
    tar = layer_tar(module)
    layer = gzip_deterministic(tar)
    config = canonical_json({
        **PLATFORM,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]},
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(config, CONFIG_TYPE),
        "layers": [descriptor(layer, LAYER_TYPE)],
        # Required by the compat variant's spec for an OCI layer media type (Istio ignores it).
        "annotations": {"module.wasm.image/variant": "compat", "org.opencontainers.image.title": "split-mirror"},
    })
    return [config, layer, manifest], descriptor(manifest, MANIFEST_TYPE)


def write_atomically(path: pathlib.Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def check_out_dir(out: pathlib.Path) -> None:
    if out.exists() and not out.is_dir():
        raise OciError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "oci-layout").is_file():
        raise OciError(f"{out} is not empty and is not an OCI image layout; choose another --out")


def build(module: bytes, out: pathlib.Path, tag: str) -> str:
    """Writes the layout into `out` and returns the manifest digest."""
    if not TAG.fullmatch(tag):
        raise OciError(f"invalid tag {tag!r}: expected [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")
    if not module.startswith(WASM_MAGIC):
        raise OciError("the module does not start with the WebAssembly magic number \\0asm")
    check_out_dir(out)
    blobs_dir = out / "blobs/sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    blobs, manifest = image(module)
    for blob in blobs:
        path = blobs_dir / hashlib.sha256(blob).hexdigest()
        if not path.is_file() or path.read_bytes() != blob:
            write_atomically(path, blob)
    write_atomically(out / "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
    entry = {**manifest, "platform": PLATFORM, "annotations": {"org.opencontainers.image.ref.name": tag}}
    write_atomically(out / "index.json",
                     canonical_json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [entry]}))
    keep = {hashlib.sha256(blob).hexdigest() for blob in blobs}
    for path in blobs_dir.iterdir():
        if path.name not in keep:
            path.unlink()
    return manifest["digest"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wasm", type=pathlib.Path, default=DEFAULT_WASM, help="the module (default: %(default)s)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "target/oci",
                        help="layout directory (default: %(default)s)")
    parser.add_argument("--tag", default="0.1.0", help="the tag in index.json (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.wasm.is_file():
        print(f"oci: {args.wasm} is missing: run `make build`", file=sys.stderr)
        return 2
    try:
        digest = build(args.wasm.read_bytes(), args.out, args.tag)
    except OciError as error:
        print(f"oci: {error}", file=sys.stderr)
        return 1
    print(f"OCI image layout {args.out} (tag {args.tag}): manifest {digest}")
    print(f"push: skopeo copy oci:{args.out}:{args.tag} docker://REGISTRY/split-mirror:{args.tag}")
    print(f"pin:  sha256: {digest.removeprefix('sha256:')}   (WasmPlugin, with the oci:// url)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
