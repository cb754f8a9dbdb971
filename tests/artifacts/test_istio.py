"""The Istio manifests in examples/: every WasmPlugin is valid for Istio's WasmPlugin schema (as the
API server applies it), its pluginConfig is accepted by the filter itself in the form istiod
delivers it, and the VirtualService, DestinationRule, Gateway, workloads and plugins agree with
each other, so the routing side cannot drift from the filter's configuration."""
import concurrent.futures
import copy
import decimal
import json
import pathlib
import subprocess
import tempfile
import unittest
import urllib.parse

import jsonschema
import yaml

from support import REPO, WASM, envoy_bin, require_wasm, shared_schema

EXAMPLES = REPO / "examples"
ISTIO = EXAMPLES / "istio"
SCHEMA_FILE = "wasmplugin.schema.json"
ROUTE_HEADER_DEFAULT = "x-split-cluster"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


# ---------------------------------------------------------------------------------------------
# The manifests


def manifests(folder=None):
    """(label, document) for every Kubernetes document in the YAML files under `folder`
    (default: examples/)."""
    for path in sorted((EXAMPLES if folder is None else folder).rglob("*.y*ml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(document, dict) and "apiVersion" in document and "kind" in document:
                yield f"{path.relative_to(REPO)}[{index}]", document


def of_kind(kind, folder=None, network=False):
    """The documents of `kind` under `folder` (default: examples/istio/). WasmPlugins: the HTTP
    ones, or with `network` the NETWORK ones (the TCP/TLS split, checked by NetworkPlugin)."""
    found = [(label, doc) for label, doc in manifests(ISTIO if folder is None else folder) if doc["kind"] == kind]
    if kind == "WasmPlugin":
        found = [(label, doc) for label, doc in found if (doc["spec"].get("type") == "NETWORK") == network]
    return found


def only(kind):
    found = of_kind(kind)
    assert len(found) == 1, f"expected one {kind} in {ISTIO}, found {[label for label, _ in found]}"
    return found[0][1]


def route_header(plugin):
    return plugin["spec"]["pluginConfig"].get("route_header", ROUTE_HEADER_DEFAULT)


def backend_clusters(plugin):
    return {b["cluster"] for route in plugin["spec"]["pluginConfig"]["routes"] for b in route["backends"]}


def mirror_clusters(plugin):
    return {m["cluster"] for route in plugin["spec"]["pluginConfig"]["routes"] for m in route.get("mirrors", [])}


def fqdn(host, namespace):
    """A Kubernetes service host as Istio resolves it in `namespace`."""
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


# ---------------------------------------------------------------------------------------------
# Istio's WasmPlugin schema, applied the way the Kubernetes API server applies it


def load_schema(root=None, required=None):
    """Istio's WasmPlugin schema from ../shared (no package registry carries it): a missing one
    skips the test saying where it looked, or fails it under SPLIT_MIRROR_REQUIRE_SHARED=1."""
    return json.loads(shared_schema(SCHEMA_FILE, root, required).read_text())


def strict(schema):
    """The schema with every described object closed to unknown fields, as the API server's strict
    field validation (kubectl's default) refuses them, except where the CRD preserves unknown
    fields (pluginConfig, status) and in metadata (an ObjectMeta the schema describes only in part)."""
    closed = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for key, child in node.items():
                if key in ("properties", "definitions"):
                    for child_schema in child.values():
                        close(child_schema)
                elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
                    close(child)
        elif isinstance(node, list):
            for child in node:
                close(child)

    metadata = closed["properties"].pop("metadata", None)
    close(closed)
    if metadata is not None:
        closed["properties"]["metadata"] = metadata
    return closed


def cel_problems(plugin):
    """The CRD's CEL rules (x-kubernetes-validations), which JSON Schema cannot express."""
    spec = plugin.get("spec") or {}
    problems = []
    url = spec.get("url")
    if isinstance(url, str) and url:
        scheme = urllib.parse.urlsplit(url if "://" in url else "http://" + url).scheme
        if "://" in url and scheme not in ("http", "https", "oci", "file"):
            problems.append(f"spec.url: url must have schema one of [http, https, file, oci], got {scheme!r}")
    if sum(key in spec for key in ("selector", "targetRef", "targetRefs")) > 1:
        problems.append("spec: only one of targetRefs or selector can be set")
    for key, value in ((spec.get("selector") or {}).get("matchLabels") or {}).items():
        if "*" in key or "*" in str(value):
            problems.append(f"spec.selector.matchLabels.{key}: wildcard not allowed in label match")
        if not key:
            problems.append("spec.selector.matchLabels: key must not be empty")
    for index, env in enumerate((spec.get("vmConfig") or {}).get("env") or []):
        if env.get("valueFrom") == "HOST" and "value" in env:
            problems.append(f"spec.vmConfig.env[{index}]: value may only be set when valueFrom is INLINE")
    for index, ref in enumerate(spec.get("targetRefs") or []):
        if ref.get("namespace"):
            problems.append(f"spec.targetRefs[{index}].namespace: cross namespace referencing is not currently supported")
    return problems


def schema_problems(plugin, schema):
    """Every reason the API server would refuse `plugin`, each naming the field."""
    validator = jsonschema.Draft7Validator(strict(schema))
    problems = []
    for error in sorted(validator.iter_errors(plugin), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(document)"
        problems.append(f"{where}: {error.message}")
    return problems + cel_problems(plugin)


# ---------------------------------------------------------------------------------------------
# pluginConfig as istiod delivers it, checked by the filter inside Envoy (`--mode validate`)


def render(value, number):
    """JSON text of `value` with every number written by `number(float)`: pluginConfig is a
    protobuf Struct, so inside Istio every number is a double."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return number(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(render(v, number) for v in value) + "]"
    return "{" + ",".join(f"{json.dumps(k)}:{render(v, number)}" for k, v in sorted(value.items())) + "}"


def go_number(x):
    """A double as Go's encoding/json writes it (what golang/protobuf's jsonpb, used by istiod's
    protomarshal.ToJSON, does for a Struct's numbers): 90 -> 90, 1048576 -> 1048576, 0.5 -> 0.5."""
    if abs(x) != 0 and (abs(x) < 1e-6 or abs(x) >= 1e21):
        mantissa, exponent = repr(x).split("e")
        return f"{mantissa}e{'-' if int(exponent) < 0 else '+'}{abs(int(exponent)):02d}".replace("e-0", "e-")
    return format(decimal.Decimal(repr(x)), "f") if x != int(x) else str(int(x))


NUMBER_FORMS = {
    "as istiod writes it (Go encoding/json: 90)": go_number,
    "as doubles (90.0)": repr,
    "in exponent form (9.000000000000000e+01)": lambda x: f"{x:.15e}",
}


def istio_wasm_filter(plugin, configuration):
    """The HTTP filter istiod builds from a WasmPlugin (pilot/pkg/model/extensions.go), with the
    module as the local file the istio-agent hands to Envoy after fetching it."""
    spec, metadata = plugin["spec"], plugin["metadata"]
    vm_config = {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(WASM)}}}
    # istiod also sets ISTIO_META_* variables (pull policy, resource version), which the agent
    # removes before Envoy sees the config; vmConfig.env remains.
    env = (spec.get("vmConfig") or {}).get("env") or []
    inline = {e["name"]: e.get("value", "") for e in env if e.get("valueFrom", "INLINE") == "INLINE"}
    host = [e["name"] for e in env if e.get("valueFrom") == "HOST"]
    if inline or host:
        vm_config["environment_variables"] = {"key_values": inline, "host_env_keys": host}
    config = {
        "name": f"{metadata['namespace']}.{metadata['name']}",
        "root_id": spec.get("pluginName", ""),
        "vm_config": vm_config,
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
    }
    policy = {"FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSE": "FAIL_CLOSED", "FAIL_RELOAD": "FAIL_RELOAD"}
    if spec.get("failStrategy") in policy:
        config["failure_policy"] = policy[spec["failStrategy"]]
    return {
        "name": config["name"],
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config},
    }


def istio_bootstrap(plugin, configuration, folder=None):
    """A proxy with the plugin before the router and the routes of the VirtualService beside it (if
    any) as Istio renders them: header matches on the route header, `outbound|port|subset|host`
    clusters."""
    services = of_kind("VirtualService", folder)
    http_routes = services[0][1]["spec"]["http"] if len(services) == 1 else [
        {"name": "default", "route": [{"destination": {"host": "default", "port": {"number": 80}}}]}]
    routes, clusters = [], set(mirror_clusters(plugin))
    for http in http_routes:
        destination = http["route"][0]["destination"]
        cluster = f"outbound|{destination['port']['number']}|{destination.get('subset', '')}|{destination['host']}"
        clusters.add(cluster)
        headers = [{"name": name, "string_match": {"exact": match["exact"]}}
                   for m in http.get("match", []) for name, match in m.get("headers", {}).items()]
        routes.append({"name": http.get("name", ""), "match": {"prefix": "/", "headers": headers},
                       "route": {"cluster": cluster}})
    return {
        "static_resources": {
            "listeners": [{
                "name": "0.0.0.0_8000",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 18000}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM_TYPE,
                        "stat_prefix": "outbound_0.0.0.0_8000",
                        "route_config": {"name": "8000", "virtual_hosts": [
                            {"name": "httpbin", "domains": ["*"], "routes": routes}]},
                        "http_filters": [
                            istio_wasm_filter(plugin, configuration),
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ],
                    },
                }]}],
            }],
            "clusters": [{
                "name": name,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 18001}}}}]}]},
            } for name in sorted(clusters)],
        }
    }


def envoy_validate(bootstrap, *extra):
    """`envoy --mode validate` on `bootstrap` (a dict), plus `extra` arguments."""
    require_wasm()
    envoy = envoy_bin()
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "bootstrap.json"
        path.write_text(json.dumps(bootstrap))
        return subprocess.run(
            [str(envoy), "--mode", "validate", "--disable-hot-restart", "-l", "info", "-c", str(path), *extra],
            cwd=directory, capture_output=True, text=True, timeout=120,
        )


def validate_all(jobs):
    """Runs `envoy_validate` for each (label, bootstrap, extra) in parallel: [(label, result)]."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [(label, pool.submit(envoy_validate, bootstrap, *extra)) for label, bootstrap, extra in jobs]
        return [(label, future.result()) for label, future in futures]


# ---------------------------------------------------------------------------------------------


class WasmPluginSchema(unittest.TestCase):
    def plugins(self):
        """Every WasmPlugin under examples/."""
        plugins = of_kind("WasmPlugin", EXAMPLES)
        self.assertGreaterEqual(len(plugins), 3, "expected the OCI, file and https WasmPlugins")
        return plugins

    def test_every_wasmplugin_is_valid_for_istios_schema(self):
        schema = load_schema()
        for label, plugin in self.plugins():
            self.assertEqual("extensions.istio.io/v1alpha1", plugin["apiVersion"], label)
            self.assertEqual([], schema_problems(plugin, schema), label)

    def test_the_three_ways_of_loading_the_module_are_shown(self):
        schemes = {urllib.parse.urlsplit(plugin["spec"]["url"]).scheme for _, plugin in self.plugins()}
        self.assertEqual({"oci", "file", "https"}, schemes)
        for label, plugin in self.plugins():
            spec = plugin["spec"]
            if spec["url"].startswith("https://"):
                self.assertRegex(spec.get("sha256", ""), r"^[0-9a-f]{64}$", f"{label}: an https module must be pinned")
            if spec["url"].startswith("file://"):
                self.assertNotIn("imagePullPolicy", spec, f"{label}: nothing is pulled for file://")

    def test_broken_copies_are_refused_naming_the_field(self):
        schema = load_schema()
        _, plugin = self.plugins()[0]

        def problems_after(change):
            broken = copy.deepcopy(plugin)
            change(broken["spec"])
            return schema_problems(broken, schema)

        cases = {
            "failStrategy": lambda s: s.update(failStrategy="FAIL_SOMETIMES"),
            "phase": lambda s: s.update(phase="ROUTER"),
            "pluginConfg": lambda s: s.update(pluginConfg=s["pluginConfig"]),
            "mdoe": lambda s: s.update(match=[{"mdoe": "CLIENT"}]),
            "imagePullPolicy": lambda s: s.update(imagePullPolicy="Sometimes"),
            "sha256": lambda s: s.update(sha256="abc"),
            "pluginConfig": lambda s: s.update(pluginConfig="routes: []"),
            "url must have schema": lambda s: s.update(url="ftp://example.com/split_mirror.wasm"),
            "only one of targetRefs or selector": lambda s: s.update(targetRefs=[{"kind": "Gateway", "name": "g"}]),
            "'url' is a required property": lambda s: s.pop("url"),
        }
        for field, change in cases.items():
            with self.subTest(field=field):
                problems = problems_after(change)
                self.assertTrue(problems, f"a WasmPlugin with a bad {field} was accepted")
                self.assertTrue(any(field in problem for problem in problems), problems)

    def test_a_missing_schema_skips_or_fails_saying_where_it_looked(self):
        with tempfile.TemporaryDirectory() as empty:
            with self.assertRaises(unittest.SkipTest) as skipped:
                load_schema(pathlib.Path(empty), required=False)
            with self.assertRaises(AssertionError) as raised:
                load_schema(pathlib.Path(empty), required=True)
        for message in (str(skipped.exception), str(raised.exception)):
            self.assertIn(str(pathlib.Path(empty) / "schemas" / SCHEMA_FILE), message)
            self.assertIn("SPLIT_MIRROR_SHARED", message)
        self.assertIn("SPLIT_MIRROR_REQUIRE_SHARED=1", str(raised.exception))

    def test_plugins_run_before_stats_and_never_fail_closed(self):
        for label, plugin in self.plugins():
            spec = plugin["spec"]
            self.assertEqual("STATS", spec.get("phase"), label)
            self.assertEqual("HTTP", spec.get("type", "HTTP"), label)
            # Unset means FAIL_CLOSE: after a trap every request would fail.
            self.assertIn(spec.get("failStrategy"), ("FAIL_RELOAD", "FAIL_OPEN"), label)
            if not spec["url"].startswith("file://"):
                # A module Istio's agent cannot download becomes an RBAC filter in the chain:
                # allow-all for FAIL_OPEN, deny-all (every request 403) for anything else.
                self.assertEqual("FAIL_OPEN", spec["failStrategy"], f"{label}: a downloaded module must fail open")

    def test_sidecar_plugins_split_outbound_traffic_only(self):
        for label, plugin in self.plugins():
            spec = plugin["spec"]
            if spec["selector"]["matchLabels"].get("istio") == "ingressgateway":
                continue
            self.assertEqual([{"mode": "CLIENT", "ports": [{"number": 8000}]}], spec.get("match"), label)

    def test_alternatives_for_one_workload_carry_the_same_config(self):
        """Plugins selecting the same pods are alternatives (they share a name, so applying one
        replaces the other): they must split the same way."""
        by_target = {}
        for label, plugin in self.plugins():
            key = (plugin["metadata"]["namespace"], json.dumps(plugin["spec"]["selector"], sort_keys=True))
            by_target.setdefault(key, []).append((label, plugin))
        for group in by_target.values():
            names = {plugin["metadata"]["name"] for _, plugin in group}
            self.assertEqual(1, len(names), [label for label, _ in group])
            configs = {json.dumps(plugin["spec"]["pluginConfig"], sort_keys=True) for _, plugin in group}
            self.assertEqual(1, len(configs), [label for label, _ in group])


class PluginConfigInEnvoy(unittest.TestCase):
    def test_every_plugin_config_is_accepted_by_the_filter_as_istio_delivers_it(self):
        jobs = []
        for label, plugin in of_kind("WasmPlugin", EXAMPLES):
            folder = (REPO / label.rsplit("[", 1)[0]).parent
            for form, number in NUMBER_FORMS.items():
                configuration = render(plugin["spec"]["pluginConfig"], number)
                jobs.append((f"{label} {form}: {configuration}", istio_bootstrap(plugin, configuration, folder), ()))
        for label, result in validate_all(jobs):
            with self.subTest(plugin=label):
                self.assertEqual(0, result.returncode, result.stdout + result.stderr)

    def test_istiod_writes_integral_doubles_as_integers(self):
        self.assertEqual("90", go_number(90.0))
        self.assertEqual("1048576", go_number(1048576.0))
        self.assertEqual("0.0001", go_number(0.0001))
        self.assertEqual("1e+21", go_number(1e21))
        self.assertEqual('{"a":[1,2.5,true,"x"]}', render({"a": [1, 2.5, True, "x"]}, go_number))

    def test_a_config_the_filter_refuses_fails_the_check_with_its_message(self):
        (label, plugin), *_ = of_kind("WasmPlugin")
        cases = {
            "fraction": ("weight", 50.5, 'route "httpbin": backends[0].weight: expected an integer'),
            "typo": ("wieght", 50, 'route "httpbin": backends[0].wieght: unknown field `wieght`'),
        }
        jobs = []
        for name, (field, value, _) in cases.items():
            broken = copy.deepcopy(plugin["spec"]["pluginConfig"])
            broken["routes"][0]["backends"][0].pop("weight")
            broken["routes"][0]["backends"][0][field] = value
            jobs.append((name, istio_bootstrap(plugin, render(broken, go_number)), ()))
        for name, result in validate_all(jobs):
            with self.subTest(case=name):
                self.assertNotEqual(0, result.returncode, f"{label}: Envoy accepted a {name} in pluginConfig")
                self.assertIn(cases[name][2], result.stdout + result.stderr)


class RoutingSide(unittest.TestCase):
    def test_virtualservice_matches_exactly_the_filter_clusters(self):
        service = only("VirtualService")
        for label, plugin in of_kind("WasmPlugin"):
            headers = set()
            matched = set()
            for http in service["spec"]["http"]:
                for match in http.get("match", []):
                    for name, value in match.get("headers", {}).items():
                        headers.add(name)
                        matched.add(value["exact"])
            self.assertEqual({route_header(plugin)}, headers, f"{label}: the VirtualService matches another header")
            self.assertEqual(backend_clusters(plugin), matched, f"{label}: the VirtualService and pluginConfig differ")

    def test_each_backend_reaches_its_own_subset_and_the_default_is_stable(self):
        service, rule = only("VirtualService"), only("DestinationRule")
        subsets = {s["name"] for s in rule["spec"]["subsets"]}
        namespace = service["metadata"]["namespace"]
        by_cluster = {}
        for http in service["spec"]["http"]:
            self.assertEqual(1, len(http["route"]), http.get("name"))
            destination = http["route"][0]["destination"]
            self.assertEqual(fqdn(rule["spec"]["host"], namespace), fqdn(destination["host"], namespace))
            self.assertIn(destination["subset"], subsets)
            for match in http.get("match", []):
                for value in match["headers"].values():
                    by_cluster[value["exact"]] = destination["subset"]
        self.assertEqual(len(by_cluster), len(set(by_cluster.values())), f"two clusters share a subset: {by_cluster}")
        default = service["spec"]["http"][-1]
        self.assertNotIn("match", default, "the last route must be the default (no match)")
        for label, plugin in of_kind("WasmPlugin"):
            stable = plugin["spec"]["pluginConfig"]["routes"][0]["backends"][0]["cluster"]
            self.assertEqual(by_cluster[stable], default["route"][0]["destination"]["subset"],
                             f"{label}: the default route must serve the stable (first) backend {stable}")

    def test_subsets_select_deployed_versions_of_the_service(self):
        rule = only("DestinationRule")
        services = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for _, d in of_kind("Service")}
        namespace = rule["metadata"]["namespace"]
        name = fqdn(rule["spec"]["host"], namespace).split(".")[0]
        selector = services[(namespace, name)]["spec"]["selector"]
        pods = [d["spec"]["template"]["metadata"]["labels"] for _, d in of_kind("Deployment")
                if d["metadata"]["namespace"] == namespace]
        for subset in rule["spec"]["subsets"]:
            wanted = {**selector, **subset["labels"]}
            self.assertTrue(any(wanted.items() <= labels.items() for labels in pods),
                            f"no Deployment has the labels of subset {subset['name']}: {wanted}")

    def test_mirror_targets_are_istio_cluster_names_of_shipped_services(self):
        services = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for _, d in of_kind("Service")}
        subsets = {s["name"] for s in only("DestinationRule")["spec"]["subsets"]}
        for label, plugin in of_kind("WasmPlugin"):
            for cluster in mirror_clusters(plugin):
                with self.subTest(plugin=label, cluster=cluster):
                    parts = cluster.split("|")
                    self.assertEqual(4, len(parts), "expected outbound|<port>|<subset>|<host>")
                    direction, port, subset, host = parts
                    self.assertEqual("outbound", direction)
                    self.assertRegex(host, r"^[a-z0-9-]+\.[a-z0-9-]+\.svc\.cluster\.local$", "a service FQDN")
                    name, namespace = host.split(".")[:2]
                    self.assertIn((namespace, name), services, "the mirror's Service is not shipped")
                    self.assertIn(int(port), [p["port"] for p in services[(namespace, name)]["spec"]["ports"]])
                    if subset:
                        self.assertIn(subset, subsets)

    def test_plugin_hosts_cover_the_virtualservice_hosts(self):
        service = only("VirtualService")
        namespace = service["metadata"]["namespace"]
        for label, plugin in of_kind("WasmPlugin"):
            hosts = {h for route in plugin["spec"]["pluginConfig"]["routes"] for h in route.get("hosts", [])}
            gateway = plugin["spec"]["selector"]["matchLabels"].get("istio") == "ingressgateway"
            for host in service["spec"]["hosts"]:
                internal = host.endswith(".svc.cluster.local") or host.count(".") < 2
                if gateway and not internal:
                    self.assertIn(host, hosts, f"{label}: requests for {host} would never be split")
                if not gateway and internal:
                    # A caller may use any of the service's names: httpbin, httpbin.httpbin, ...
                    short = fqdn(host, namespace).split(".")
                    for n in (1, 2, 3, 5):
                        name = ".".join(short[:n])
                        self.assertIn(name, hosts, f"{label}: calls to {name} would never be split")

    def test_the_gateway_the_virtualservice_binds_is_shipped(self):
        service = only("VirtualService")
        gateways = {f"{d['metadata']['namespace']}/{d['metadata']['name']}": d for _, d in of_kind("Gateway")}
        for name in service["spec"]["gateways"]:
            if name == "mesh":
                continue
            self.assertIn(name, gateways)
            servers = gateways[name]["spec"]["servers"]
            external = [h for h in service["spec"]["hosts"] if not h.endswith(".svc.cluster.local")]
            self.assertTrue(set(external) <= {h for s in servers for h in s["hosts"]})
            gateway_plugins = [p for _, p in of_kind("WasmPlugin")
                               if p["spec"]["selector"]["matchLabels"] == gateways[name]["spec"]["selector"]]
            self.assertEqual(1, len(gateway_plugins), "one WasmPlugin runs on the gateway's pods")

    def test_the_file_plugins_module_is_mounted_into_the_client_proxy(self):
        for label, plugin in of_kind("WasmPlugin"):
            url = plugin["spec"]["url"]
            if not url.startswith("file://"):
                continue
            path = pathlib.PurePosixPath(url.removeprefix("file://"))
            selector = plugin["spec"]["selector"]["matchLabels"].items()
            clients = [d for _, d in of_kind("Deployment")
                       if d["metadata"]["namespace"] == plugin["metadata"]["namespace"]
                       and selector <= d["spec"]["template"]["metadata"]["labels"].items()]
            self.assertEqual(1, len(clients), f"{label}: no Deployment runs this plugin")
            annotations = clients[0]["spec"]["template"]["metadata"]["annotations"]
            volumes = json.loads(annotations["sidecar.istio.io/userVolume"])
            mounts = json.loads(annotations["sidecar.istio.io/userVolumeMount"])
            (name, mount), = mounts.items()
            self.assertEqual(str(path.parent), mount["mountPath"], label)
            self.assertTrue(mount.get("readOnly"))
            self.assertIn(name, volumes)
            self.assertIn("configMap", volumes[name], "the README creates the module's ConfigMap")

    def test_the_stats_bootstrap_has_the_harness_tags_and_loads_in_envoy(self):
        harness = yaml.safe_load((REPO / "envoy/envoy.yaml").read_text())["stats_config"]["stats_tags"]
        configmaps = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for _, d in of_kind("ConfigMap")}
        annotated = [d for _, d in of_kind("Deployment")
                     if "sidecar.istio.io/bootstrapOverride" in d["spec"]["template"]["metadata"].get("annotations", {})]
        self.assertTrue(annotated)
        for deployment in annotated:
            name = deployment["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/bootstrapOverride"]
            self.assertIn((deployment["metadata"]["namespace"], name), configmaps)
        gateway_namespaces = {p["metadata"]["namespace"] for _, p in of_kind("WasmPlugin")
                              if p["spec"]["selector"]["matchLabels"].get("istio") == "ingressgateway"}
        for namespace in gateway_namespaces:
            self.assertIn((namespace, "split-mirror-stats"), configmaps, "the gateway's namespace needs the ConfigMap too")
        jobs = []
        (_, plugin), *_ = of_kind("WasmPlugin")
        for (namespace, name), configmap in sorted(configmaps.items()):
            custom = configmap["data"]["custom_bootstrap.json"]
            self.assertEqual({"stats_config": {"stats_tags": harness}}, json.loads(custom), f"{namespace}/{name}")
            jobs.append((f"{namespace}/{name}", istio_bootstrap(plugin, render(plugin["spec"]["pluginConfig"], go_number)),
                         ("--config-yaml", custom)))
        for label, result in validate_all(jobs):
            self.assertEqual(0, result.returncode, f"{label}: {result.stdout}{result.stderr}")

    def test_every_yaml_document_names_its_namespace(self):
        for label, document in manifests(ISTIO):
            if document["kind"] != "Namespace":
                self.assertIn("namespace", document["metadata"], label)


# ---------------------------------------------------------------------------------------------
# The NETWORK plugin: the module as a network filter before tcp_proxy (TLS split by SNI)

NETWORK_WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
ISTIO_CLUSTER = r"^outbound\|(\d+)\|([^|]*)\|([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$"


def tcp_backends(plugin):
    return [b["cluster"] for route in plugin["spec"]["pluginConfig"]["tcp_routes"] for b in route["backends"]]


def istio_network_bootstrap(plugin, configuration):
    """The outbound listener istiod builds for a `tls` route (tls_inspector, a filter chain per
    SNI ending in tcp_proxy to the route's destination), with the plugin before tcp_proxy."""
    wasm = istio_wasm_filter(plugin, configuration)
    wasm["typed_config"]["@type"] = NETWORK_WASM_TYPE
    routes = plugin["spec"]["pluginConfig"].get("tcp_routes") or [{"backends": [{"cluster": "outbound|3000||x.y.svc.cluster.local"}]}]
    clusters = sorted({b["cluster"] for route in routes for b in route["backends"]})
    default = routes[0]["backends"][0]["cluster"]
    return {
        "static_resources": {
            "listeners": [{
                "name": "0.0.0.0_3000",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 13000}},
                "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
                "filter_chains": [{"filters": [wasm, {
                    "name": "envoy.filters.network.tcp_proxy",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                     "stat_prefix": default, "cluster": default}}]}],
            }],
            "clusters": [{
                "name": name, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 13001}}}}]}]},
            } for name in clusters],
        }
    }


class NetworkPlugin(unittest.TestCase):
    def plugins(self):
        plugins = of_kind("WasmPlugin", EXAMPLES, network=True)
        self.assertGreaterEqual(len(plugins), 1, "expected the TLS WasmPlugin (examples/istio/wasmplugin-tls.yaml)")
        return plugins

    def test_network_plugins_are_valid_for_istios_schema(self):
        schema = load_schema()
        for label, plugin in self.plugins():
            self.assertEqual([], schema_problems(plugin, schema), label)

    def test_network_plugins_load_as_the_network_filter_and_fail_open(self):
        for label, plugin in self.plugins():
            spec = plugin["spec"]
            self.assertEqual("split-mirror-tcp", spec["pluginName"], f"{label}: the root id of the network filter")
            self.assertIn("tcp_routes", spec["pluginConfig"], label)
            self.assertEqual("FAIL_OPEN", spec["failStrategy"], f"{label}: a downloaded module must fail open")
            self.assertEqual("CLIENT", spec["match"][0]["mode"], label)

    def test_backends_are_istio_cluster_names_on_the_matched_port(self):
        import re
        for label, plugin in self.plugins():
            ports = {str(p["number"]) for m in plugin["spec"]["match"] for p in m.get("ports", [])}
            for cluster in tcp_backends(plugin):
                parsed = re.match(ISTIO_CLUSTER, cluster)
                self.assertIsNotNone(parsed, f"{label}: {cluster} is not outbound|port|subset|service.namespace.svc.cluster.local")
                self.assertIn(parsed.group(1), ports, f"{label}: {cluster} is not on the plugin's port")
                self.assertEqual(plugin["metadata"]["namespace"], parsed.group(4), f"{label}: {cluster}")

    def test_plugin_config_is_accepted_by_the_network_filter_as_istio_delivers_it(self):
        jobs = []
        for label, plugin in self.plugins():
            for form, number in NUMBER_FORMS.items():
                configuration = render(plugin["spec"]["pluginConfig"], number)
                jobs.append((f"{label} {form}", istio_network_bootstrap(plugin, configuration), ()))
        for label, result in validate_all(jobs):
            with self.subTest(plugin=label):
                self.assertEqual(0, result.returncode, result.stdout + result.stderr)

    def test_configs_the_network_filter_refuses_fail_the_check_with_its_message(self):
        (label, plugin), *_ = self.plugins()
        http_only = {"routes": [{"name": "web", "backends": [{"cluster": "a"}]}]}
        fraction = copy.deepcopy(plugin["spec"]["pluginConfig"])
        fraction["tcp_routes"][0]["backends"][0]["weight"] = 50.5
        cases = {
            "http-only": (http_only, "tcp_routes: missing: loaded as the network filter"),
            "fraction": (fraction, 'tcp_route "rollouts-demo-tls": backends[0].weight: expected an integer'),
        }
        jobs = [(name, istio_network_bootstrap(plugin, render(config, go_number)), ())
                for name, (config, _) in cases.items()]
        for name, result in validate_all(jobs):
            with self.subTest(case=name):
                self.assertNotEqual(0, result.returncode, f"{label}: Envoy accepted the {name} config")
                self.assertIn(cases[name][1], result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
