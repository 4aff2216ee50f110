"""Atomic output folders and the JSON manifest written beside every artifact.

The manifest records where the weights came from (source sha256), what made the artifact (toolkit,
library versions), how (options), and the sha256 of every file written, so an artifact can be traced
back and checked later without re-running the export.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alexnet_export import __version__
from converters.arch import Architecture, from_json, load_arch
from converters.atomic import atomic_output, check_output
from converters.errors import InputError
from converters.weights import AlexNetWeights, carry_sha256, file_sha256

__all__ = [
    "MANIFEST_NAME",
    "atomic_output",
    "check_output",
    "file_artifact",
    "file_sha256",
    "manifest",
    "sidecar_manifest_path",
    "write_manifest",
]

MANIFEST_NAME = "alexnet-export.json"
MANIFEST_SCHEMA = 1


def tree_sha256(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (or of ``root`` itself), keyed by POSIX relative path."""
    if root.is_file():
        return {root.name: file_sha256(root)}
    return {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }


def manifest(
    *,
    artifact: Path,
    kind: str,
    weights: AlexNetWeights,
    options: Mapping[str, Any],
    versions: Mapping[str, str],
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest of an artifact that has been fully written at ``artifact``.

    ``files`` (name -> sha256) replaces hashing the tree under ``artifact`` when the caller has it.
    """
    source = weights.source
    return {
        "schema": MANIFEST_SCHEMA,
        "format": kind,
        "toolkit": {"name": "alexnet-export", "version": __version__},
        "versions": {"python": platform.python_version(), **versions},
        "source": {"path": source.path, "sha256": source.sha256, "format": source.format} if source else None,
        "model": {"num_classes": weights.num_classes, "parameters": weights.parameter_count},
        "architecture": weights.arch.to_json(),
        "options": dict(options),
        "files": dict(files) if files is not None else tree_sha256(artifact),
    }


def sidecar_manifest_path(artifact: Path) -> Path:
    """Where the manifest of a single-file artifact goes: ``model.onnx`` -> ``model.onnx.alexnet-export.json``."""
    return artifact.with_name(f"{artifact.name}.{MANIFEST_NAME}")


@contextmanager
def file_artifact(
    out: Path,
    *,
    force: bool,
    kind: str,
    weights: AlexNetWeights,
    options: Mapping[str, Any],
    versions: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> Iterator[Path]:
    """Yield a temporary path for a single-file artifact; on success it becomes ``out``, manifest beside it.

    Both files are written to temporary siblings and renamed into place only when the block succeeds;
    an existing ``out`` or manifest is replaced only with ``force``. ``extra`` is merged into the manifest.
    """
    with atomic_output(sidecar_manifest_path(out), force=force) as tmp_manifest:
        with atomic_output(out, force=force) as tmp:
            yield tmp
            files = {out.name: file_sha256(tmp)}
            written = os.stat(tmp)
        carry_sha256(out, files[out.name], written)  # verify's report hashes it next: not read again
        content = manifest(
            artifact=out, kind=kind, weights=weights, options=options, versions=versions, files=files
        )
        write_manifest(tmp_manifest, {**content, **(extra or {})})


def write_manifest(path: Path, content: Mapping[str, Any]) -> None:
    """Write a manifest as indented, key-sorted JSON."""
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")


_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema": int, "format": str, "toolkit": dict, "versions": dict, "source": (dict, type(None)), "model": dict,
    "architecture": dict, "options": dict, "files": dict, "artifacts": list, "nodes": dict, "calibration": dict,
    "passed": bool, "labels": list,
}
MAX_MANIFEST_BYTES = 4 * 2**20


def check_manifest(content: Any, where: Path) -> dict[str, Any]:
    """``content`` if it has the manifest's shape: a JSON object whose known fields have their types.

    A manifest is advisory (``verify`` reads precision, layout and architecture from the artifact
    itself), but a malformed one is refused rather than half-read.

    Raises:
        InputError: naming the field and what it holds.

    """
    if not isinstance(content, dict):
        raise InputError(f"{where}: expected a manifest (a JSON object), received a JSON {type(content).__name__}")
    for key, kind in _MANIFEST_FIELDS.items():
        if key in content and not isinstance(content[key], kind):
            raise InputError(f"{where}: field {key!r}: expected {_kind_names(kind)}, received "
                             f"{type(content[key]).__name__}")
    files = content.get("files", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise InputError(f"{where}: field 'files': expected names mapped to sha256 strings")
    if not all(isinstance(name, str) for name in content.get("artifacts", [])):
        raise InputError(f"{where}: field 'artifacts': expected a list of relative paths")
    return content


def _kind_names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"dict": "an object", "list": "a list", "str": "a string", "int": "an integer", "bool": "a boolean",
             "NoneType": "null"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def read_manifest(candidate: Path) -> dict[str, Any]:
    """The manifest file at ``candidate``, parsed and shape-checked.

    Raises:
        InputError: too large, not UTF-8 JSON, or not a manifest.

    """
    try:
        size = candidate.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise InputError(f"{candidate}: expected a manifest of at most 4 MiB, received {size / 2**20:.0f} MiB")
        loaded = json.loads(candidate.read_text(encoding="utf-8"))
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"{candidate}: expected a JSON manifest, received unreadable data ({exc})") from None
    return check_manifest(loaded, candidate)


def artifact_manifest(path: Path) -> dict[str, Any]:
    """The manifest written beside (or inside) an artifact, or ``{}`` when there is none.

    Raises:
        InputError: a manifest is there but malformed.

    """
    candidate = path / MANIFEST_NAME if path.is_dir() else sidecar_manifest_path(path)
    if not candidate.is_file():
        return {}
    return read_manifest(candidate)


def listed_artifacts(folder: Path) -> list[Path]:
    """The artifacts an export folder's manifest lists, each confined to ``folder``.

    Raises:
        InputError: a listed path is absolute, climbs out with ``..`` or through a link, or is missing.

    """
    listing = folder / MANIFEST_NAME
    content = read_manifest(listing)
    root = folder.resolve()
    out = []
    for name in content.get("artifacts", []):
        relative = Path(name)
        target = (folder / relative).resolve()
        if relative.is_absolute() or ".." in relative.parts or not target.is_relative_to(root) or target == root:
            raise InputError(f"{listing}: artifact {name!r}: expected a path inside {folder}, refused")
        if not target.exists():
            raise InputError(f"{listing}: artifact {name!r}: listed but not there")
        out.append(folder / relative)
    if not out:
        raise InputError(f"{listing}: expected a list of artifacts, received none")
    return out


def artifact_options(path: Path) -> dict[str, Any]:
    """The export options recorded in the artifact's manifest (``{}`` without one)."""
    options = artifact_manifest(path).get("options", {})
    return options if isinstance(options, dict) else {}


def artifact_architecture(path: Path) -> Architecture:
    """The source architecture an artifact implements: ONNX ``metadata_props``, else its manifest, else bvlc-alexnet.

    Raises:
        InputError: the recorded architecture is not valid JSON or not a valid architecture.

    """
    text: str | None = None
    if path.is_file() and path.suffix.lower() == ".onnx":
        from alexnet_export.trust import load_onnx

        model = load_onnx(path)  # size and content checked before the model is parsed into memory
        text = {prop.key: prop.value for prop in model.metadata_props}.get("alexnet_export.architecture_json")
        del model
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            raise InputError(f"{path}: metadata architecture_json: expected JSON, received invalid JSON") from None
        return from_json(data, where=f"{path}: metadata architecture_json")
    recorded = artifact_manifest(path).get("architecture")
    if recorded is not None:
        return from_json(recorded, where=f"{path}: manifest architecture")
    return load_arch(None)


def embeds_preprocessing(path: Path) -> bool:
    """Whether the artifact takes uint8 RGB images and preprocesses them in-graph (from its manifest)."""
    return bool(artifact_options(path).get("embed_preprocessing", False))
