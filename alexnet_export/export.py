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
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alexnet_export.artifacts import MANIFEST_NAME, atomic_output, check_output, manifest, write_manifest
from alexnet_export.parity import PRECISIONS
from alexnet_export.progress import QUIET, Progress
from alexnet_export.quiet import release_memory
from converters.errors import InputError
from converters.weights import AlexNetWeights

if TYPE_CHECKING:  # the exporters import TensorFlow; the CLI parses the plan before that
    from collections.abc import Callable
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


def merged(parts: list[Report], order: list[Path]) -> Report:
    """One report of several ``verify`` runs on the same weights and inputs, artifacts in ``order``.

    The canonical graph's rows come first, then each artifact's rows, weight check and structure.
    """
    from alexnet_export.verify import environment

    if len(parts) == 1 and parts[0].environment:
        return parts[0]
    by_artifact = {key: value for part in parts for key, value in part.artifacts.items()}
    graph_rows = [row for part in parts for row in part.rows if row.format == "graph"]
    rows = graph_rows + [row for path in order for part in parts for row in part.rows if row.artifact == str(path)]
    weights = tuple(check for path in order for part in parts for check in part.weights if check.artifact == str(path))
    structures = tuple(c for path in order for part in parts for c in part.structures if c.artifact == str(path))
    first = parts[0]
    tf32 = bool(first.environment.get("tf32", False))
    return replace(
        first,
        rows=tuple(rows),
        weights=weights,
        structures=structures,
        artifacts={str(path): by_artifact[str(path)] for path in order},
        environment=environment(tf32, rows),
        require_gpu=any(part.require_gpu for part in parts),
    )


def _released(run: Callable[[], Report]) -> Report:
    """``run()``, then its freed memory handed back (its thread's malloc arena keeps it otherwise).

    Only trimmed, not collected: ONNX Runtime's sessions go with their runners, and TensorFlow's import may
    be running on another thread by then.
    """
    try:
        return run()
    finally:
        release_memory(collect=False)


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
    tensorflow: Callable[[], Future[None]] | None = None,
) -> Report:
    """Write every artifact of ``plan``, verify them, and write the report and manifest into ``out_dir``.

    The weights' architecture says what to build; ``labels`` (class names) go into the manifest,
    where ``predict`` finds them. ``oracle``: the ``batch`` inputs and their :func:`background_oracle`,
    when the caller started it earlier (the CLI does, before importing TensorFlow). ``tensorflow``: starts
    TensorFlow's import on another thread (the CLI passes ``quiet.import_tensorflow_in_background``). It is
    started when ONNX and TFLite are written and the TFLite verify begins: the import holds the GIL most of
    the time, and so does the writing before it, while the runtimes that verify loads compute without it. The
    ONNX file's verify begins earlier, on a thread of its own, as soon as the file is written. The
    SavedModel waits for the import; int8 TFLite, whose converter reads the SavedModel, starts it first.

    Returns:
        The verify report, with artifact paths under ``out_dir``.

    """
    from alexnet_export.verify import background_oracle, make_inputs

    check_output(out_dir, force=force)
    if oracle is None:
        inputs = make_inputs(count=batch, spec=weights.arch.input)
        oracle = (inputs, background_oracle(weights, inputs))  # on the second core while TensorFlow exports
    inputs, logits = oracle
    started: list[Future[None]] = []

    def start_tensorflow() -> Future[None] | None:
        if tensorflow is not None and not started:
            started.append(tensorflow())
        return started[0] if started else None

    try:
        return _export(weights, out_dir, plan, batch, device, force, progress, labels, inputs, logits, start_tensorflow)
    finally:  # an error is reported only once the import has given stderr back
        wait(started)


def _export(
    weights: AlexNetWeights,
    out_dir: Path,
    plan: ExportPlan,
    batch: int,
    device: str,
    force: bool,
    progress: Progress,
    labels: tuple[str, ...] | None,
    inputs: Inputs,
    logits: Future[np.ndarray],
    start_tensorflow: Callable[[], Future[None] | None],
) -> Report:
    from alexnet_export.exporters.onnx import export_onnx
    from alexnet_export.exporters.tflite import PLACED_PRECISIONS, TFLiteOptions, export_tflite
    from alexnet_export.report import verify_markdown
    from alexnet_export.verify import verify

    def savedmodel_now(path: Path, *, keep: bool = False) -> Any:
        """Write the SavedModel; with ``keep``, return its module (the canonical graph) for the graph rows."""
        importing = start_tensorflow()
        if importing is not None:
            with progress.step("waiting for TensorFlow"):
                importing.result()
        from alexnet_export.exporters.savedmodel import export_savedmodel  # imports TensorFlow
        from alexnet_export.graph import AlexNet

        module = AlexNet(weights) if keep else None
        export_savedmodel(weights, path, progress=progress, module=module)
        release_memory()
        return module

    with atomic_output(out_dir, force=force) as tmp:
        tmp.mkdir()
        names = ["savedmodel"] if "savedmodel" in plan.formats else []  # the report's and manifest's order
        names += ["alexnet.onnx"] if "onnx" in plan.formats else []
        names += [f"alexnet_{p}.tflite" for p in plan.precisions] if "tflite" in plan.formats else []
        savedmodel = tmp / "savedmodel" if "savedmodel" in plan.formats else None
        # TensorFlow's oneDNN allocator keeps the memory of the 244 MB it allocates for the SavedModel in a
        # pool for the process (measured: 250 MiB not returned) unless it uses the system allocator, which
        # the console script chooses (alexnet_export._entry); so the artifacts whose runtimes are not
        # TensorFlow are written and verified first, and the SavedModel and its TensorFlow rows come last:
        # ONNX Runtime and LiteRT then never run on top of that pool. Only the TFLite converter (int8)
        # needs the SavedModel first.
        converter_needs_it = "tflite" in plan.formats and any(p not in PLACED_PRECISIONS for p in plan.precisions)
        if savedmodel is not None and converter_needs_it:
            savedmodel_now(savedmodel)
        check = partial(verify, weights=weights, inputs=inputs, device=device, labels=labels, oracle=logits)
        parts = []
        # The ONNX file is verified on a thread of its own as soon as it is written, while this one converts and
        # writes the TFLite files: ONNX Runtime loads and runs it almost entirely without the GIL, which the
        # TFLite export here and TensorFlow's import after it hold most of the time. Leaving this block waits for
        # it, so the folder is never removed under a runtime still reading it.
        with ThreadPoolExecutor(1, thread_name_prefix="alexnet-export-verify-onnx") as beside:
            onnx_check = None
            if "onnx" in plan.formats:
                export_onnx(weights, tmp / "alexnet.onnx", progress=progress)
                release_memory()
                onnx_check = beside.submit(_released, partial(check, [tmp / "alexnet.onnx"], include_graph=False,
                                                              describe_environment=False))
            if "tflite" in plan.formats:
                for precision in plan.precisions:
                    options = TFLiteOptions(precision=precision)
                    written = savedmodel if converter_needs_it else None
                    export_tflite(weights, tmp / f"alexnet_{precision}.tflite", options=options, progress=progress,
                                  savedmodel=written)
                    release_memory()
            early = [tmp / n for n in names if n != "alexnet.onnx" and (n != "savedmodel" or converter_needs_it)]
            early_graph = savedmodel is None or converter_needs_it
            start_tensorflow()  # see export_all: from here on the work runs mostly outside the GIL
            if early or early_graph:
                with progress.step(f"verifying {', '.join(path.name for path in early) or 'the canonical graph'}"):
                    parts.append(check(early, include_graph=early_graph))
            if onnx_check is not None:
                with progress.step("verifying alexnet.onnx (begun beside the TFLite export)"):
                    parts.append(onnx_check.result())
        if savedmodel is not None and not converter_needs_it:
            # The canonical module just saved is the graph the graph rows run: built once, run, dropped,
            # before the SavedModel's own checks and rows load it again.
            module = savedmodel_now(savedmodel, keep=True)
            with progress.step("verifying the SavedModel and the canonical graph"):
                parts.append(check([], include_graph=True, graph=module))
                del module
                release_memory()
                parts.append(check([savedmodel], include_graph=False))
        report = merged(parts, [tmp / name for name in names])
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
