"""Every overlay renders, and every object validates against its Kubernetes (or CRD) schema."""

from __future__ import annotations

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.deploy.crd_schemas import CUSTOM
from tests.deploy.manifests import OVERLAYS, Obj, render

# The oldest Kubernetes the manifests target: native gRPC probes (GA 1.27) and the preStop
# `sleep` action (beta, on by default, 1.30). Validated strictly (unknown fields fail).
KUBERNETES_VERSIONS = ("1.30.0", "1.32.0")


def _ident(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_with_namespace(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    assert objects, f"overlay {overlay} rendered nothing"
    namespaces = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    assert len(namespaces) == 1, "an overlay creates exactly one namespace"
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespaces[0], _ident(obj)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_validate_against_schemas(overlay: str, version: str) -> None:
    errors: list[str] = []
    for obj in render(f"overlays/{overlay}"):
        custom = CUSTOM.get((obj["apiVersion"], obj["kind"]))
        try:
            if custom is not None:
                jsonschema.Draft202012Validator(custom).validate(obj)
            else:
                kubernetes_validate.validate(obj, version, strict=True)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            errors.append(f"{_ident(obj)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{_ident(obj)}: no schema for {obj['apiVersion']} {obj['kind']}")
    assert not errors, "\n".join(errors)


def test_custom_schemas_reject_mistakes() -> None:
    """The hand-written CRD schemas do catch the usual slips (a sanity check of the checker)."""
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "w"},
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "triggers": [{"type": "redis-streams", "metadata": {"pendingEntriesCount": 2}}],
        },
    }
    validator = jsonschema.Draft202012Validator(CUSTOM[("keda.sh/v1alpha1", "ScaledObject")])
    assert not validator.is_valid(bad), "a number in trigger metadata must be rejected"
    bad["spec"]["maxReplicas"] = 3  # type: ignore[index]
    assert not validator.is_valid(bad)


def test_strict_validation_rejects_unknown_fields() -> None:
    """A check of the checker: a misspelt field fails strict validation."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "readinesProbe": {}}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[0], strict=True)
