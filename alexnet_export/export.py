"""``export``: every format from one weight set, then ``verify``, into one folder with one manifest.

Layout of OUT_DIR (written to a temporary sibling and renamed into place only when complete):

    savedmodel/                    SavedModel (+ its own manifest)
    alexnet.onnx                   ONNX, opset 17, NHWC (+ alexnet.onnx.alexnet-export.json)
    alexnet_<precision>.tflite     one per TFLite precision (+ manifest)
    report.json, report.md         the verify report (JSON per verify_schema.json; markdown for CI)
    alexnet-export.json            the folder's manifest: artifacts, sha256 of every file, verdict
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from alexnet_export.artifacts import MANIFEST_NAME, atomic_output, check_output, manifest, write_manifest
from alexnet_export.parity import PRECISIONS
from alexnet_export.progress import QUIET, Progress
from alexnet_export.quiet import release_memory
from converters.errors import InputError
from converters.weights import AlexNetWeights

if TYPE_CHECKING:  # the exporters import TensorFlow; the CLI parses the plan before that
    from concurrent.futures import Future

    import numpy as np

    from alexnet_export.verify import Inputs, Report

FORMATS: tuple[str, ...] = ("savedmodel", "onnx", "tflite")


def _subset(option: str, value: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [part for part in chosen if part not in allowed]
    if not chosen or unknown:
        raise InputError(f"{option}: expected a comma-separated subset of {', '.join(allowed)}, received {value!r}")
    return tuple(dict.fromkeys(chosen))


@dataclass(frozen=True)
class ExportPlan:
    """Which formats and TFLite precisions ``export`` writes."""

    formats: tuple[str, ...] = FORMATS
    precisions: tuple[str, ...] = ("fp32",)

    @classmethod
    def parse(cls, *, formats: str, precisions: str) -> ExportPlan:
        """A plan from the comma-separated CLI values.

        Raises:
            InputError: an unknown format or precision, or an empty list.

        """
        return cls(_subset("--formats", formats, FORMATS), _subset("--precision", precisions, PRECISIONS))


def _relabel(report: Report, old: str, new: str) -> Report:
    rows = tuple(replace(row, artifact=row.artifact.replace(old, new, 1)) for row in report.rows)
    checks = tuple(replace(check, artifact=check.artifact.replace(old, new, 1)) for check in report.weights)
    artifacts = {key.replace(old, new, 1): value for key, value in report.artifacts.items()}
    structures = tuple(replace(check, artifact=check.artifact.replace(old, new, 1)) for check in report.structures)
    return replace(report, rows=rows, weights=checks, artifacts=artifacts, structures=structures)


def export_all(
    weights: AlexNetWeights,
    out_dir: Path,
    *,
    plan: ExportPlan = ExportPlan(),
    batch: int = 8,
    device: str = "all",
    force: bool = False,
    progress: Progress = QUIET,
    labels: tuple[str, ...] | None = None,
    oracle: tuple[Inputs, Future[np.ndarray]] | None = None,
) -> Report:
    """Write every artifact of ``plan``, verify them, and write the report and manifest into ``out_dir``.

    The weights' architecture says what to build; ``labels`` (class names) go into the manifest,
    where ``predict`` finds them. ``oracle``: the ``batch`` inputs and their :func:`background_oracle`,
    when the caller started it earlier (the CLI does, before importing TensorFlow).

    Returns:
        The verify report, with artifact paths under ``out_dir``.

    """
    from alexnet_export.exporters.onnx import export_onnx
    from alexnet_export.exporters.savedmodel import export_savedmodel
    from alexnet_export.exporters.tflite import TFLiteOptions, export_tflite
    from alexnet_export.report import verify_markdown
    from alexnet_export.verify import background_oracle, make_inputs, verify

    check_output(out_dir, force=force)
    if oracle is None:
        inputs = make_inputs(count=batch, spec=weights.arch.input)
        oracle = (inputs, background_oracle(weights, inputs))  # on the second core while TensorFlow exports
    inputs, logits = oracle
    with atomic_output(out_dir, force=force) as tmp:
        tmp.mkdir()
        names: list[str] = []
        savedmodel = None
        if "savedmodel" in plan.formats:
            savedmodel = tmp / "savedmodel"
            export_savedmodel(weights, savedmodel, progress=progress)
            names.append("savedmodel")
            release_memory()
        if "onnx" in plan.formats:
            export_onnx(weights, tmp / "alexnet.onnx", progress=progress)
            names.append("alexnet.onnx")
            release_memory()
        if "tflite" in plan.formats:
            for precision in plan.precisions:
                name = f"alexnet_{precision}.tflite"
                options = TFLiteOptions(precision=precision)
                export_tflite(weights, tmp / name, options=options, progress=progress, savedmodel=savedmodel)
                names.append(name)
                release_memory()
        with progress.step(f"verifying {len(names)} artifacts"):
            report = verify(
                [tmp / name for name in names], weights, inputs=inputs, device=device, labels=labels, oracle=logits
            )
        report = _relabel(report, str(tmp), str(out_dir))
        (tmp / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
        (tmp / "report.md").write_text(verify_markdown(report))
        content = manifest(
            artifact=tmp,
            kind="export",
            weights=weights,
            options={
                "formats": list(plan.formats),
                "precisions": list(plan.precisions),
                "batch": batch,
                "device": device,
                "architecture": weights.arch.name,
            },
            versions={},
        )
        extra = {"labels": list(labels)} if labels is not None else {}
        write_manifest(
            tmp / MANIFEST_NAME, {**content, **extra, "artifacts": names, "passed": report.exit_code == 0}
        )
    return report
