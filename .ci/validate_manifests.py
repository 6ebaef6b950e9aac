#!/usr/bin/env python3
"""Validate rendered Kubernetes manifests of the EPP (called by .ci/check-manifests).

Usage:
  validate_manifests.py --crds CRDS.yaml --kubernetes-version 1.32 [--epp BIN] LABEL=FILE...

Each FILE is one rendered kustomization (multi-document YAML); LABEL names it in
messages. Checks, with one line per failure on stdout:

- the CRDs are structural (a type on every node, one storage version, ...), as the
  API server requires of apiextensions.k8s.io/v1;
- built-in resources validate against the Kubernetes OpenAPI schemas bundled with
  `kubernetes-validate`, in strict mode (unknown fields are errors);
- InferencePool and InferenceObjective objects validate against the
  openAPIV3Schema of their version in the CRDs, with `jsonschema`; unknown fields
  are errors, as with kubectl's default strict field validation (CEL rules, if
  any, are not evaluated);
- other kinds (Istio's DestinationRule) get a structural check of what we use;
  a kind none of these know is an error;
- within each rendered file, the pieces agree: the Deployment's --pool-name and
  --pool-namespace name the InferencePool, whose endpointPickerRef names the EPP
  Service and port, which selects the EPP pods; the ports, probes, config mount,
  ServiceAccount and RBAC match the flags; the DestinationRule host and the
  (any) PodDisruptionBudget selector match the pods;
- with --epp, the Deployment's exact flags (with --config-file pointing at a copy
  of the rendered ConfigMap's file) pass `epp ... --validate-config`.

Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv_utils
from packaging.version import Version
from referencing import Registry, Resource
import yaml

CUSTOM_KINDS = {"InferencePool", "InferenceObjective"}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
INT_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

failures: list[str] = []


def fail(where: str, message: str) -> None:
    failures.append(f"{where}: {message}")


def ident(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{name}"


def load_docs(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --- CRDs -------------------------------------------------------------------------

def walk_schema(node: Any, path: str) -> Iterator[tuple[str, dict]]:
    """Every schema node below (and including) `node`, with a readable path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk_schema(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk_schema(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk_schema(node["additionalProperties"], f"{path}{{*}}")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, child in enumerate(node.get(key) or []):
            yield from walk_schema(child, f"{path}.{key}[{i}]")
    if isinstance(node.get("not"), dict):
        yield from walk_schema(node["not"], f"{path}.not")


def check_structural(where: str, schema: dict) -> None:
    """The parts of the 'structural schema' rules a generator can get wrong."""
    for path, node in walk_schema(schema, ""):
        path = path or "<root>"
        in_junctor = ".allOf[" in path or ".anyOf[" in path or ".oneOf[" in path or ".not" in path
        if not in_junctor and "type" not in node and not (
            node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        ):
            fail(where, f"schema node {path} has no type (not a structural schema)")
        if "properties" in node and isinstance(node.get("additionalProperties"), dict):
            fail(where, f"schema node {path} has both properties and additionalProperties")
        if "$ref" in node:
            fail(where, f"schema node {path} uses $ref, which CRDs do not allow")
        if "items" in node and not isinstance(node["items"], dict):
            fail(where, f"schema node {path}: items must be one schema")
        if node.get("type") == "array" and "items" not in node:
            fail(where, f"schema node {path}: an array needs items")


def load_crds(path: str) -> dict[tuple[str, str, str], dict]:
    """(group, version, kind) -> openAPIV3Schema, after checking the CRDs."""
    schemas: dict[tuple[str, str, str], dict] = {}
    for crd in load_docs(path):
        where = f"{path}: {ident(crd)}"
        if crd.get("kind") != "CustomResourceDefinition":
            fail(where, "not a CustomResourceDefinition")
            continue
        spec = crd.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        expected_name = f"{(spec.get('names') or {}).get('plural')}.{group}"
        if crd["metadata"].get("name") != expected_name:
            fail(where, f"metadata.name must be <plural>.<group> = {expected_name}")
        versions = spec.get("versions") or []
        if sum(1 for v in versions if v.get("storage")) != 1:
            fail(where, "exactly one version must have storage: true")
        for v in versions:
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            if not isinstance(schema, dict):
                fail(where, f"version {v.get('name')} has no openAPIV3Schema")
                continue
            check_structural(f"{where} {v.get('name')}", schema)
            schemas[(group, v.get("name"), kind)] = schema
    return schemas


def to_json_schema(node: Any, top: bool = False) -> Any:
    """An OpenAPI v3 (Kubernetes structural) schema as a JSON Schema draft 4 schema."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format", "default", "example"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(child) for name, child in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(child) for child in value]
        else:
            out[key] = value
    fmt = node.get("format")
    if out.get("type") == "integer" and fmt in INT_FORMATS:
        low, high = INT_FORMATS[fmt]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if top:
        props = out.setdefault("properties", {})
        props["apiVersion"] = {"type": "string"}
        props["kind"] = {"type": "string"}
        props["metadata"] = {"type": "object"}  # ObjectMeta: checked in check_metadata
        out["required"] = sorted(set(out.get("required", [])) | {"apiVersion", "kind", "metadata"})
    # Unknown fields: pruned by the API server, rejected by kubectl's strict field
    # validation. Reject them here too.
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "type" not in out and "anyOf" in out:
            out["anyOf"].append({"type": "null"})
    return out


def check_metadata(where: str, obj: dict) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        fail(where, "metadata must be an object")
        return
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        fail(where, f"metadata.name {name!r} is not a DNS-1123 subdomain")
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is not None and not (
            isinstance(values, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
        ):
            fail(where, f"metadata.{field} must map strings to strings")


def validate_custom(where: str, obj: dict, crd_schemas: dict) -> None:
    group, _, version = obj["apiVersion"].rpartition("/")
    schema = crd_schemas.get((group, version, obj["kind"]))
    if schema is None:
        fail(where, f"no CRD in the generated CRDs serves {obj['apiVersion']} {obj['kind']}")
        return
    check_metadata(where, obj)
    validator = jsonschema.Draft4Validator(to_json_schema(schema, top=True))
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "<root>"
        fail(where, f"{path}: {error.message}")


# --- built-in and other kinds -----------------------------------------------------

def builtin_validator(obj: dict, version: str) -> tuple[jsonschema.protocols.Validator, str]:
    """The strict validator kubernetes_validate.validate() builds for `obj`, so that
    every error can be reported, not only the first. Raises SchemaNotFoundError."""
    available = [v for v in kv_utils.all_versions() if Version(kv_utils.major_minor(v)) <= Version(version)]
    if not available:
        raise kv_utils.VersionNotSupportedError(version=version)
    schema_version = available[-1]
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    schema_dir = f"kubernetes-json-schema/v{schema_version}-local-strict"
    try:
        schema = kv_utils.schema_contents(f"{schema_dir}/{obj['kind'].lower()}-{api}.json", version)
    except FileNotFoundError:
        raise kv_utils.SchemaNotFoundError(kind=obj["kind"], version=version, api_version=obj["apiVersion"])
    definitions = kv_utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry), kv_utils.major_minor(schema_version)


def validate_builtin(where: str, obj: dict, version: str) -> None:
    try:
        validator, schema_version = builtin_validator(obj, version)
    except kv_utils.SchemaNotFoundError:
        fail(where, f"no Kubernetes {version} schema for {obj['apiVersion']} {obj['kind']}")
        return
    except kv_utils.VersionNotSupportedError:
        fail(where, f"kubernetes-validate {kubernetes_validate.__version__} does not know Kubernetes {version}")
        return
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in error.absolute_path) or "<root>"
        fail(where, f"{path}: {error.message} (Kubernetes {schema_version} schema, strict)")


def validate_destination_rule(where: str, obj: dict) -> None:
    """Istio's CRDs are not here: check the fields we set."""
    check_metadata(where, obj)
    if obj["apiVersion"] not in ("networking.istio.io/v1", "networking.istio.io/v1beta1"):
        fail(where, f"unexpected apiVersion {obj['apiVersion']}")
    spec = obj.get("spec") or {}
    allowed = {"host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"}
    for key in spec:
        if key not in allowed:
            fail(where, f"spec.{key}: unknown DestinationRule field")
    if not isinstance(spec.get("host"), str) or not spec["host"]:
        fail(where, "spec.host must be a non-empty string")
    tls = (spec.get("trafficPolicy") or {}).get("tls") or {}
    if tls.get("mode") not in ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"):
        fail(where, f"spec.trafficPolicy.tls.mode {tls.get('mode')!r} is not a TLS mode")
    if "insecureSkipVerify" in tls and not isinstance(tls["insecureSkipVerify"], bool):
        fail(where, "spec.trafficPolicy.tls.insecureSkipVerify must be a boolean")


def is_builtin(api_version: str) -> bool:
    """Kubernetes' own API groups: core (""), apps, policy, batch, ... and *.k8s.io
    (rbac.authorization, apiextensions, ...); the inference groups are CRDs."""
    group = api_version.rpartition("/")[0]
    if group.startswith("inference.networking."):
        return False
    return "." not in group or group.endswith(".k8s.io")


# --- consistency within one rendered variant -------------------------------------

def parse_flags(args: list[str]) -> dict[str, str | bool]:
    """The Deployment's args as Go's flag package reads them (bool flags bare)."""
    flags: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            break
        name = arg.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
            flags[name] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("-"):
            flags[name] = args[i + 1]
            i += 1
        else:
            flags[name] = True
        i += 1
    return flags


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def role_allows(role: dict, group: str, resource: str, verbs: set[str]) -> bool:
    granted: set[str] = set()
    for rule in role.get("rules") or []:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
            granted |= set(rule.get("verbs", []))
    return "*" in granted or verbs <= granted


def check_variant(label: str, docs: list[dict], epp: str | None) -> None:
    def find(kind: str) -> list[dict]:
        return [d for d in docs if d.get("kind") == kind]

    deployments = [d for d in find("Deployment")
                   if any(c.get("name") == "epp" for c in d["spec"]["template"]["spec"].get("containers", []))]
    if len(deployments) != 1:
        fail(label, f"expected one EPP Deployment (container `epp`), found {len(deployments)}")
        return
    dep = deployments[0]
    where = f"{label}: {ident(dep)}"
    ns = dep["metadata"].get("namespace")
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "epp")
    args = container.get("args") or []
    flags = parse_flags(args)
    if not labels_match(dep["spec"]["selector"].get("matchLabels") or {}, pod_labels):
        fail(where, "spec.selector does not match the pod template's labels")

    # The pool the flags name.
    pool_name, pool_ns = flags.get("pool-name"), flags.get("pool-namespace", "default")
    pool_group = flags.get("pool-group", "inference.networking.k8s.io")
    if pool_ns != ns:
        fail(where, f"--pool-namespace {pool_ns} is not the Deployment's namespace {ns}")
    pools = [p for p in find("InferencePool")
             if p["apiVersion"].startswith(f"{pool_group}/") and p["metadata"].get("name") == pool_name]
    if not pools:
        fail(where, f"--pool-name {pool_name} (group {pool_group}) names no InferencePool in this variant")
    services = find("Service")
    for pool in pools:
        pwhere = f"{label}: {ident(pool)}"
        if pool["metadata"].get("namespace") != ns:
            fail(pwhere, f"not in the EPP's namespace {ns}")
        ref = (pool.get("spec") or {}).get("endpointPickerRef") or {}
        svc = next((s for s in services if s["metadata"]["name"] == ref.get("name")
                    and s["metadata"].get("namespace") == ns), None)
        if ref.get("kind", "Service") != "Service" or svc is None:
            fail(pwhere, f"endpointPickerRef {ref.get('name')!r} names no Service of this variant")
            continue
        swhere = f"{label}: {ident(svc)}"
        port = (ref.get("port") or {}).get("number")
        sport = next((p for p in svc["spec"].get("ports", []) if p.get("port") == port), None)
        grpc_port = int(flags.get("grpc-port", 9002))
        if sport is None:
            fail(swhere, f"has no port {port} (the pool's endpointPickerRef.port)")
        else:
            if sport.get("targetPort", sport["port"]) not in (grpc_port, "grpc"):
                fail(swhere, f"port {port} does not target the ext_proc port {grpc_port}")
            if sport.get("appProtocol") != "http2":
                fail(swhere, f"port {port} should have appProtocol http2")
        if not labels_match(svc["spec"].get("selector") or {}, pod_labels):
            fail(swhere, "selector does not select the EPP pods")

    # Ports and probes against the flags.
    ports = {p["containerPort"] for p in container.get("ports", [])}
    for flag, default in (("grpc-port", 9002), ("grpc-health-port", 9003), ("metrics-port", 9090)):
        if int(flags.get(flag, default)) not in ports:
            fail(where, f"--{flag} {flags.get(flag, default)} is not a containerPort")
    ha = flags.get("ha-enable-leader-election") in (True, "true")
    for probe, service in (("livenessProbe", "liveness" if ha else "inference-extension"),
                           ("readinessProbe", "readiness" if ha else "inference-extension")):
        grpc = (container.get(probe) or {}).get("grpc") or {}
        if grpc.get("port") != int(flags.get("grpc-health-port", 9003)):
            fail(where, f"{probe} is not a grpc probe on --grpc-health-port")
        if grpc.get("service") != service:
            fail(where, f"{probe} should ask for service {service!r}"
                        f" ({'with' if ha else 'without'} leader election), not {grpc.get('service')!r}")

    # The config file comes from a ConfigMap of this variant.
    config_text = None
    config_file = flags.get("config-file")
    if isinstance(config_file, str):
        directory, key = os.path.split(config_file)
        mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"].rstrip("/") == directory), None)
        volume = mount and next((v for v in pod["spec"].get("volumes", []) if v["name"] == mount["name"]), None)
        cm_name = volume and (volume.get("configMap") or {}).get("name")
        cm = next((c for c in find("ConfigMap") if c["metadata"]["name"] == cm_name), None)
        if cm is None:
            fail(where, f"--config-file {config_file} is not in a ConfigMap of this variant mounted at {directory}")
        elif key not in (cm.get("data") or {}):
            fail(where, f"ConfigMap {cm_name} has no key {key} (--config-file {config_file})")
        else:
            config_text = cm["data"][key]

    # ServiceAccount and RBAC.
    sa = pod["spec"].get("serviceAccountName")
    if not any(s["metadata"]["name"] == sa for s in find("ServiceAccount")):
        fail(where, f"serviceAccountName {sa!r} is not a ServiceAccount of this variant")

    def bound(kind: str, binding_kind: str) -> list[dict]:
        names = {b["roleRef"]["name"] for b in find(binding_kind)
                 if b["roleRef"].get("kind") == kind
                 and any(s.get("kind") == "ServiceAccount" and s.get("name") == sa
                         and s.get("namespace", ns) == ns for s in b.get("subjects") or [])}
        return [r for r in find(kind) if r["metadata"]["name"] in names]

    roles = bound("Role", "RoleBinding")
    cluster_roles = bound("ClusterRole", "ClusterRoleBinding")
    needs = [("", "pods", "Role"), (pool_group, "inferencepools", "Role"),
             ("inference.networking.x-k8s.io", "inferenceobjectives", "Role")]
    for group, resource, _ in needs:
        if not any(role_allows(r, group, resource, {"get", "list", "watch"}) for r in roles):
            fail(where, f"no Role bound to {sa} allows get/list/watch on {group or 'core'}/{resource}")
    for group, resource in (("authentication.k8s.io", "tokenreviews"), ("authorization.k8s.io", "subjectaccessreviews")):
        if not any(role_allows(r, group, resource, {"create"}) for r in cluster_roles):
            fail(where, f"no ClusterRole bound to {sa} allows create on {group}/{resource}")
    if ha:
        if not any(role_allows(r, "coordination.k8s.io", "leases",
                               {"get", "list", "watch", "create", "update", "patch", "delete"}) for r in roles):
            fail(where, f"--ha-enable-leader-election, but no Role bound to {sa} manages leases")
        if not any(role_allows(r, "", "events", {"create", "patch"}) for r in roles):
            fail(where, f"--ha-enable-leader-election, but no Role bound to {sa} creates events")
        if (dep["spec"].get("replicas") or 1) < 2:
            fail(where, "--ha-enable-leader-election with fewer than 2 replicas")
        strategy = dep["spec"].get("strategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and \
                str((strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")) != "100%":
            fail(where, "with leader election only one pod is ever ready, so a RollingUpdate "
                        "needs maxUnavailable 100% (anything less stalls the rollout)")
    elif (dep["spec"].get("replicas") or 1) > 1:
        fail(where, "several replicas without --ha-enable-leader-election")

    # Istio and disruption budgets.
    for dr in find("DestinationRule"):
        hosts = {f"{s['metadata']['name']}.{s['metadata'].get('namespace')}.svc.cluster.local" for s in services}
        if dr["spec"].get("host") not in hosts:
            fail(f"{label}: {ident(dr)}", f"host {dr['spec'].get('host')} is none of this variant's Services ({', '.join(sorted(hosts))})")
    for pdb in find("PodDisruptionBudget"):
        if not labels_match((pdb["spec"].get("selector") or {}).get("matchLabels") or {}, pod_labels):
            fail(f"{label}: {ident(pdb)}", "selector does not select the EPP pods")
    for tsc in pod["spec"].get("topologySpreadConstraints") or []:
        if not labels_match((tsc.get("labelSelector") or {}).get("matchLabels") or {}, pod_labels):
            fail(where, "a topologySpreadConstraint does not select the EPP pods")

    # The flags, as deployed, parsed by the real binary.
    if epp and config_text is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, os.path.basename(config_file))
            with open(path, "w", encoding="utf-8") as f:
                f.write(config_text)
            run_args = []
            skip = False
            for i, arg in enumerate(args):
                if skip:
                    skip = False
                    continue
                if arg.lstrip("-") == "config-file":
                    run_args += [arg, path]
                    skip = True
                elif arg.lstrip("-").startswith("config-file="):
                    run_args.append(f"--config-file={path}")
                else:
                    run_args.append(arg)
            try:
                proc = subprocess.run([epp, *run_args, "--validate-config"], capture_output=True,
                                      text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                fail(where, f"could not run {epp}: {e}")
                return
            if proc.returncode != 0:
                lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("{")]
                fail(where, f"`epp <Deployment args> --validate-config` exited {proc.returncode}: "
                            f"{lines[-1] if lines else proc.stderr.strip()[-300:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crds", required=True)
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("--epp", help="the epp binary, to check the Deployment flags")
    parser.add_argument("--no-variant-checks", action="append", default=[], metavar="LABEL",
                        help="validate LABEL's objects, but do not expect an EPP Deployment in it")
    parser.add_argument("files", nargs="+", metavar="LABEL=FILE")
    opts = parser.parse_args()

    crd_schemas = load_crds(opts.crds)
    inputs = [tuple(f.split("=", 1)) if "=" in f else (f, f) for f in opts.files]
    counts: dict[str, int] = {}
    for label, path in inputs:
        try:
            docs = load_docs(path)
        except (OSError, yaml.YAMLError) as e:
            fail(label, f"cannot read: {e}")
            continue
        counts[label] = len(docs)
        for obj in docs:
            where = f"{label}: {ident(obj)}"
            if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
                fail(where, "not a Kubernetes object (no apiVersion or kind)")
                continue
            if obj["kind"] in CUSTOM_KINDS and obj["apiVersion"].startswith("inference.networking."):
                validate_custom(where, obj, crd_schemas)
            elif obj["kind"] == "DestinationRule" and obj["apiVersion"].startswith("networking.istio.io/"):
                validate_destination_rule(where, obj)
            elif is_builtin(obj["apiVersion"]):
                validate_builtin(where, obj, opts.kubernetes_version)
            else:
                fail(where, f"no schema known for {obj['apiVersion']} {obj['kind']}")
        if label not in opts.no_variant_checks:
            check_variant(label, docs, opts.epp)

    for line in failures:
        print(f"FAIL {line}")
    summary = ", ".join(f"{label} {n}" for label, n in counts.items())
    print(f"validated {sum(counts.values())} objects ({summary}): {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
