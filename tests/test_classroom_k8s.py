"""classroom/k8s: the Zero to JupyterHub values, checked against the chart's schema and on their own terms.

No cluster runs here (and privileged containers cannot start on this machine),
so the files are checked on paper: against the facts of the chart's values
schema that they touch, copied below from ``jupyterhub/values.schema.yaml`` in
jupyterhub/zero-to-jupyterhub-k8s (the parts the files use, with the chart's
``additionalProperties: false`` where it has it, so a misspelt key fails), and
then for what the schema leaves to Kubernetes: the sidecar's privileges, its
listen address, its volume, its limits.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

K8S = Path(__file__).resolve().parent.parent / "classroom" / "k8s"

_ANY: dict = {}
_IMAGE = {"type": "object", "additionalProperties": False, "required": ["name", "tag"],
          "properties": {"name": {"type": "string"}, "tag": {"type": "string"},
                         "pullPolicy": {"enum": [None, "", "IfNotPresent", "Always", "Never"]},
                         "pullSecrets": {"type": "array"}}}
_ARRAY = {"type": "array"}
_OBJECT_OPEN = {"type": "object", "additionalProperties": True}

#: The facts of the chart's values.schema.yaml that the classroom's values touch.  Top-level and
#: ``singleuser`` keys are all listed (with ``additionalProperties: false``, as in the chart); the
#: chart's top-level ``required`` is left out because Helm validates the values after merging them
#: with the chart's defaults, which provide those keys.
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{k: _ANY for k in ("enabled", "fullnameOverride", "nameOverride", "imagePullSecret", "imagePullSecrets",
                             "hub", "proxy", "ingress", "prePuller", "custom", "debug", "rbac", "global")},
        "singleuser": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **{k: _ANY for k in ("networkPolicy", "podNameTemplate", "initContainers", "profileList",
                                     "extraFiles", "extraNodeAffinity", "extraPodAffinity", "extraPodAntiAffinity",
                                     "cloudMetadata", "events", "extraAnnotations", "extraLabels", "extraResource",
                                     "fsGid", "networkTools", "serviceAccountName", "uid")},
                "cpu": {"type": "object", "additionalProperties": False,
                        "properties": {"limit": {"type": ["number", "null"]},
                                       "guarantee": {"type": ["number", "null"]}}},
                "memory": {"type": "object", "additionalProperties": False,
                           "properties": {"limit": {"type": ["number", "string", "null"]},
                                          "guarantee": {"type": ["number", "string", "null"]}}},
                "image": _IMAGE,
                "extraEnv": {"type": ["object", "array"], "additionalProperties": True},
                "nodeSelector": _OBJECT_OPEN,
                "extraTolerations": _ARRAY,
                "cmd": {"type": ["array", "string", "null"]},
                "defaultUrl": {"type": ["string", "null"]},
                "extraContainers": _ARRAY,
                "extraPodConfig": _OBJECT_OPEN,
                "lifecycleHooks": {"type": "object", "additionalProperties": False,
                                   "properties": {"postStart": _OBJECT_OPEN, "preStop": _OBJECT_OPEN}},
                "startTimeout": {"type": ["integer", "null"]},
                "allowPrivilegeEscalation": {"type": ["boolean", "null"]},
                "storage": {
                    "type": "object", "additionalProperties": False, "required": ["type", "homeMountPath"],
                    "properties": {"capacity": {"type": ["string", "null"]}, "dynamic": _ANY, "extraLabels": _ANY,
                                   "extraVolumeMounts": _ARRAY, "extraVolumes": _ARRAY,
                                   "homeMountPath": {"type": "string"}, "static": _ANY,
                                   "type": {"enum": ["dynamic", "static", "none"]}}},
            },
        },
        "scheduling": {
            "type": "object", "additionalProperties": False,
            "properties": {
                **{k: _ANY for k in ("userScheduler", "podPriority", "userPlaceholder", "corePods")},
                "userPods": {"type": "object", "additionalProperties": False,
                             "properties": {"tolerations": _ARRAY,
                                            "nodeAffinity": {"type": "object", "additionalProperties": False,
                                                             "properties": {"matchNodePurpose": {
                                                                 "enum": ["ignore", "prefer", "require"]}}}}},
            },
        },
        "cull": {
            "type": "object", "additionalProperties": False, "required": ["enabled"],
            "properties": {"enabled": {"type": "boolean"},
                           **{k: {"type": ["boolean", "null"]} for k in ("users", "adminUsers", "removeNamedServers")},
                           **{k: {"type": ["integer", "null"]} for k in ("timeout", "every", "concurrency", "maxAge")}},
        },
    },
}


def _load(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


def _helm_merge(base: dict, over: dict) -> dict:
    """Merge values as Helm does: mappings merge key by key, anything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _helm_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


VARIANTS = {"values.yaml": lambda: _load("values.yaml"),
            "values.yaml + values-sysbox.yaml": lambda: _helm_merge(_load("values.yaml"), _load("values-sysbox.yaml"))}


def _errors(values: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(values)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_values_pass_the_charts_schema(variant):
    assert _errors(VARIANTS[variant]()) == []


@pytest.mark.parametrize("mistake", [
    ("singleuser", "extraContainer", []),             # a misspelt key
    ("singleuser", "cpu", {"limit": "one"}),          # a wrong type
    ("cull", "timeout", "1h"),
    ("scheduling", "userPods", {"nodeAffinity": {"matchNodePurpose": "always"}}),
])
def test_the_schema_facts_catch_a_mistake(mistake):
    section, key, value = mistake
    values = _load("values.yaml")
    values.setdefault(section, {})[key] = value
    assert _errors(values), f"{section}.{key}={value!r} should fail the chart's schema"


def _sidecar(values: dict) -> dict:
    sidecars = [c for c in values["singleuser"]["extraContainers"] if c["name"] == "dind"]
    assert len(sidecars) == 1
    return sidecars[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_engine_sidecar_listens_only_on_the_pods_loopback_and_the_notebook_finds_it(variant):
    values = VARIANTS[variant]()
    sidecar = _sidecar(values)
    assert re.fullmatch(r"docker:\d+\.\d+(\.\d+)?-dind", sidecar["image"]), "pin a docker:X.Y-dind image"
    args = sidecar["args"]
    assert args[0] == "dockerd"  # the image's entrypoint then adds no 0.0.0.0 listener of its own
    tcp = [a.split("=", 1)[1] for a in args if a.startswith("--host=tcp://")]
    assert tcp == ["tcp://127.0.0.1:2375"]
    assert {"name": "DOCKER_TLS_CERTDIR", "value": ""} in sidecar["env"]
    host = values["singleuser"]["extraEnv"]["DOCKER_HOST"]
    assert host == "tcp://localhost:2375" and host.rsplit(":", 1)[1] == tcp[0].rsplit(":", 1)[1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_engine_has_a_bounded_data_volume_and_resource_limits(variant):
    values = VARIANTS[variant]()
    sidecar = _sidecar(values)
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in values["singleuser"]["storage"]["extraVolumes"]}
    data = volumes[mounts["/var/lib/docker"]]
    assert data["emptyDir"]["sizeLimit"]
    limits, requests = sidecar["resources"]["limits"], sidecar["resources"]["requests"]
    assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests)
    assert values["singleuser"]["cpu"]["limit"] and values["singleuser"]["memory"]["limit"]


def test_privileged_pods_run_only_on_their_own_node_pool_and_the_notebook_is_not_privileged():
    values = _load("values.yaml")
    assert _sidecar(values)["securityContext"]["privileged"] is True
    user = values["singleuser"]
    assert user["allowPrivilegeEscalation"] is False
    [(label, wanted)] = [(k, v) for k, v in user["nodeSelector"].items() if "privileged" in k]
    assert {"key": label, "operator": "Equal", "value": wanted, "effect": "NoSchedule"} in user["extraTolerations"]
    assert values["scheduling"]["userPods"]["nodeAffinity"]["matchNodePurpose"] == "require"
    readme = (K8S / "README.md").read_text()
    assert f"kubectl taint nodes NODE {label}={wanted}:NoSchedule" in readme


def test_sysbox_runs_the_same_engine_without_privileges():
    values = VARIANTS["values.yaml + values-sysbox.yaml"]()
    assert values["singleuser"]["extraPodConfig"]["runtimeClassName"] == "sysbox-runc"
    assert not any(c.get("securityContext", {}).get("privileged") for c in values["singleuser"]["extraContainers"])
    plain = _sidecar(_load("values.yaml"))
    sysbox = _sidecar(values)
    assert {k: v for k, v in plain.items() if k != "securityContext"} == \
        {k: v for k, v in sysbox.items() if k != "securityContext"}, "the two sidecars should differ only in privileges"


def test_idle_servers_are_culled():
    cull = _load("values.yaml")["cull"]
    assert cull["enabled"] is True and 0 < cull["every"] <= cull["timeout"]


def test_the_risks_are_written_next_to_the_values():
    readme = (K8S / "README.md").read_text().lower()
    for fact in ("privileged container can reach the node", "sysbox", "0.0.0.0:2375", "sizelimit"):
        assert fact in readme, fact
    assert "README.md" in (K8S / "values.yaml").read_text()


def test_the_learners_image_is_read_by_the_courses_own_dockerfile_parser():
    from course_helpers.dockerfile.parse import parse_dockerfile

    model = parse_dockerfile(K8S / "Dockerfile.singleuser")
    [stage] = model.stages
    assert re.search(r":\d{4}-\d{2}-\d{2}$", stage.base), "pin the base image's tag"
    assert "docker-buildx" in " ".join(i.original for i in stage.instructions if i.keyword == "RUN")
