"""The parity matrix: every artifact on every runtime and device against the float64 oracle.

Each (artifact, runtime, device) row runs the same preprocessed images and is compared with the
oracle of :mod:`alexnet_export.reference` using :mod:`alexnet_export.parity`'s figures and the
tolerance row of the artifact's precision. Rows that could not run are *not verified*, never passed.
Weight parity reads the weights back out of every fp32 artifact (:mod:`alexnet_export.extract`) and
compares them bit for bit with the source. Every failure is collected; the exit status is 1 when any
row or weight check fails (or when ``require_gpu`` finds no GPU row that ran), else 0.
"""

from __future__ import annotations

import gc
import hashlib
import platform
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_export import __version__
from alexnet_export.artifacts import embeds_preprocessing, tree_sha256
from alexnet_export.labels import top_k as top_k_classes
from alexnet_export.parity import (
    TOLERANCES,
    Metrics,
    Tolerance,
    allclose_failures,
    compare,
    failures,
)
from alexnet_export.preprocess import image_files, input_to_rgb, preprocess_batch, rgb_to_input, synthetic_images
from alexnet_export.quiet import import_tensorflow
from alexnet_export.reference import forward, softmax
from alexnet_export.stored import strided, tiles
from alexnet_export.structure import StructureCheck, check_structure
from converters.arch import Architecture, InputSpec, load_arch
from converters.errors import InputError
from converters.weights import AlexNetWeights, with_arch

SCHEMA_VERSION = 1
FIXTURE_IMAGES = Path(__file__).resolve().parent / "sample_images"  # package data: there in a wheel too
SCHEMA_PATH = Path(__file__).with_name("verify_schema.json")


@dataclass(frozen=True)
class Inputs:
    """The images every row runs, and where they came from."""

    images: np.ndarray
    sources: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """sha256 of the float32 NHWC batch."""
        return hashlib.sha256(np.ascontiguousarray(self.images, dtype=np.float32).tobytes()).hexdigest()


def make_inputs(
    *,
    count: int = 8,
    seed: int = 0,
    images_dir: Path | None = None,
    fixtures: bool = True,
    spec: InputSpec | None = None,
) -> Inputs:
    """Seeded synthetic images, the sample images in ``alexnet_export/sample_images`` and those in ``images_dir``.

    All preprocessed for ``spec`` (default: BVLC AlexNet's input), i.e. in the network's input space.

    Raises:
        InputError: ``images_dir`` is missing, empty or holds an unreadable image.

    """
    spec = spec or load_arch(None).input
    parts, sources = [], []
    if count:
        parts.append(synthetic_images(count, seed=seed, spec=spec))
        sources.append(f"{count} seeded synthetic images (seed {seed})")
    for folder, label in ((FIXTURE_IMAGES if fixtures else None, "fixtures"), (images_dir, "--images")):
        if folder is None or (label == "fixtures" and not folder.is_dir()):
            continue
        files = image_files(folder)
        parts.append(preprocess_batch(files, spec=spec))
        sources.extend(f"{label}: {path.name}" for path in files)
    if not parts:
        raise InputError("--batch: expected at least one image, received 0 synthetic images and no folder")
    return Inputs(np.concatenate(parts).astype(np.float32, copy=False), tuple(sources))


@dataclass(frozen=True)
class RowResult:
    """One (artifact, runtime, device) row of the matrix."""

    artifact: str
    format: str
    precision: str
    runtime: str
    device: str
    status: str  # "passed", "failed" or "not verified"
    metrics: Metrics | None = None
    tolerance: Tolerance | None = None
    failures: tuple[str, ...] = ()
    reason: str = ""
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return {
            "artifact": self.artifact,
            "format": self.format,
            "precision": self.precision,
            "runtime": self.runtime,
            "device": self.device,
            "status": self.status,
            "failures": list(self.failures),
            "reason": self.reason,
            "metrics": self.metrics.to_json() if self.metrics else None,
            "tolerance": vars(self.tolerance) if self.tolerance else None,
            "details": self.details,
        }


@dataclass(frozen=True)
class WeightCheck:
    """Weight parity of one artifact: ``bit-exact``, ``fold-exact``, ``mismatch`` or ``not applicable`` (quantised).

    ``fold-exact``: every layer bit-exact except the ones BatchNormalization was folded into, which are
    within :data:`FOLD_ULPS` float32 ulps of an independent float64 fold (``folded`` names them).
    """

    artifact: str
    status: str
    mismatches: tuple[str, ...] = ()
    folded: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The check as JSON-ready values."""
        return {
            "artifact": self.artifact, "status": self.status, "mismatches": list(self.mismatches),
            "folded": list(self.folded),
        }


@dataclass(frozen=True)
class Report:
    """Everything ``verify`` found."""

    rows: tuple[RowResult, ...]
    weights: tuple[WeightCheck, ...]
    inputs: Inputs
    artifacts: dict[str, dict[str, Any]]
    environment: dict[str, Any]
    source: dict[str, str]
    require_gpu: bool = False
    image_top5: tuple[dict[str, Any], ...] = ()
    structures: tuple[StructureCheck, ...] = ()

    @property
    def problems(self) -> list[str]:
        """Every failure, one line each; empty when everything verified passes."""
        found = [f"{c.artifact}: structure: {d}" for c in self.structures for d in c.differences]
        found += [f"{c.artifact}: manifest: {m}" for c in self.structures for m in c.manifest]
        found += [
            f"{r.artifact} [{r.runtime}, {r.device}]: {'; '.join(r.failures)}"
            for r in self.rows
            if r.status == "failed"
        ]
        found += [
            f"{w.artifact}: weights differ from the source: {', '.join(w.mismatches)}"
            for w in self.weights
            if w.status == "mismatch"
        ]
        if self.require_gpu and not any(r.device.startswith("gpu") and r.status != "not verified" for r in self.rows):
            found.append("--require-gpu: no GPU row could run on this machine")
        return found

    @property
    def diagnose_commands(self) -> list[str]:
        """For each artifact with a failed row, the ``diagnose`` command that says where and why."""
        weights = self.source.get("path") or "WEIGHTS"
        failed = dict.fromkeys(r.artifact for r in self.rows if r.status == "failed" and r.format != "graph")
        return [f"alexnet-export diagnose {shlex.quote(a)} --weights {shlex.quote(weights)}" for a in failed]

    @property
    def exit_code(self) -> int:
        """0 when every verified row and weight check passed, else 1."""
        return 1 if self.problems else 0

    def to_json(self) -> dict[str, Any]:
        """The report per ``verify_schema.json``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "toolkit": {"name": "alexnet-export", "version": __version__},
            "passed": self.exit_code == 0,
            "problems": self.problems,
            "environment": self.environment,
            "source": self.source,
            "inputs": {
                "count": int(self.inputs.images.shape[0]),
                "sha256": self.inputs.sha256,
                "sources": list(self.inputs.sources),
                "image_top5": list(self.image_top5),
            },
            "artifacts": self.artifacts,
            "rows": [row.to_json() for row in self.rows],
            "weights": [check.to_json() for check in self.weights],
            "structure": [check.to_json() for check in self.structures],
        }


def claimed_architecture(path: Path, arch: Architecture) -> list[str]:
    """A recorded architecture that takes a preset's name but is not that preset's network."""
    from converters.arch import PRESETS, first_difference

    preset = PRESETS.get(arch.name)
    if preset is None:
        return []
    difference = first_difference(arch, preset)
    if difference is None:
        return []
    return [f"records architecture {arch.name!r}, which is not the {arch.name} preset: {difference}"]


def _run_rows(
    make: Callable[[], list[Any]],
    device: str,
    artifact: str,
    precision: str,
    images: np.ndarray,
    expected: np.ndarray | Future[np.ndarray],
    tolerance: Tolerance,
) -> list[RowResult]:
    """Build the runners of one artifact, run each, and let them all go (sessions and interpreters hold weights).

    ``expected`` may be the oracle still computing: a row runs first and waits for it only to compare.
    """
    from alexnet_export.runtimes import on_device

    runners = on_device(make(), device)
    results = [_row(artifact, precision, runner, images, expected, tolerance) for runner in runners]
    tensorflow = any(runner.format in ("graph", "savedmodel") for runner in runners)
    del runners
    # A loaded SavedModel or module sits in reference cycles, so its variables go only with a collection.
    # ONNX Runtime's sessions and LiteRT's interpreters go with their runners (measured: RSS back without
    # one), and a collection while TensorFlow's import runs beside them walks every object it has made
    # so far, holding the GIL (up to ~0.13 s: benchmarks/tf_import.py).
    if tensorflow:
        gc.collect()
    return results


def _row(
    artifact: str,
    precision: str,
    runner: Any,
    images: np.ndarray,
    oracle: np.ndarray | Future[np.ndarray],
    tolerance: Tolerance,
) -> RowResult:
    from alexnet_export.runtimes import Unavailable

    row = RowResult(artifact, runner.format, precision, runner.runtime, runner.device, "not verified")
    if isinstance(runner, Unavailable):
        return replace(row, reason=runner.reason)
    try:
        actual = runner.run(images)
    except Exception as exc:  # a runtime that fails is a failed row, reported with the rest
        return replace(row, status="failed", failures=(f"run failed: {exc}",), details=runner.details)
    expected = oracle.result() if isinstance(oracle, Future) else oracle
    metrics = compare(actual, expected)
    missed = tuple(failures(metrics, tolerance, expected.shape) + allclose_failures(actual, expected, tolerance))
    status = "failed" if missed else "passed"
    return replace(row, status=status, metrics=metrics, tolerance=tolerance, failures=missed, details=runner.details)


FOLD_ULPS = 2  # a fold computed in float64 in another order rounds to float32 within this many ulps


def independent_fold(weights: AlexNetWeights) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The folded (kernel, bias) of every layer BatchNormalization folds into, in float64.

    Written apart from :mod:`converters.fold` (loops over channels and spatial cells instead of a
    channel map and einsum), so that ``verify`` checks the fold instead of repeating it.
    """
    from converters.arch import BatchNorm, Flatten, fold_plan

    arch = weights.arch
    layers = {n: (lay.kernel.astype(np.float64), lay.bias.astype(np.float64)) for n, lay in weights.layers.items()}
    position = {getattr(lay, "name", None): i for i, lay in enumerate(arch.layers)}
    for bn, into, where in fold_plan(arch):
        spec = arch.layers[position[bn]]
        assert isinstance(spec, BatchNorm)
        norm = weights.norms[bn]
        gamma, beta, mean, var = (a.astype(np.float64) for a in norm.arrays())
        scale = gamma / np.sqrt(var + spec.epsilon)
        shift = beta - mean * scale
        kernel, bias = layers[into]
        if where == "previous":
            layers[into] = (kernel * scale, bias * scale + shift)
        elif kernel.ndim == 4:
            layers[into] = _fold_conv_input(kernel, bias, scale, shift, arch.groups_of(into))
        else:
            cells = kernel.shape[0] // scale.shape[0]  # spatial cells of the flattened map (1 after a dense)
            order = next((lay.order for lay in arch.layers if isinstance(lay, Flatten)), "hwc")
            row_scale = np.tile(scale, cells) if order == "hwc" else np.repeat(scale, cells)
            row_shift = np.tile(shift, cells) if order == "hwc" else np.repeat(shift, cells)
            layers[into] = (kernel * row_scale[:, None], bias + (kernel * row_shift[:, None]).sum(axis=0))
    return {into: layers[into] for _, into, _ in fold_plan(arch)}


def _fold_conv_input(
    kernel: np.ndarray, bias: np.ndarray, scale: np.ndarray, shift: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    out = kernel.copy()
    new_bias = bias.copy()
    per_in, per_out = kernel.shape[2], kernel.shape[3] // groups
    for g in range(groups):
        outs = slice(g * per_out, (g + 1) * per_out)
        for i in range(per_in):
            channel = g * per_in + i
            out[:, :, i, outs] = kernel[:, :, i, outs] * scale[channel]
            new_bias[outs] += kernel[:, :, i, outs].sum(axis=(0, 1)) * shift[channel]
    return out, new_bias


def _within_fold(actual: np.ndarray, expected64: np.ndarray) -> bool:
    expected = expected64.astype(np.float32)
    allowed = FOLD_ULPS * np.spacing(np.abs(expected)) + 1e-12 * float(np.abs(expected64).max(initial=0.0))
    return bool(np.all(np.abs(actual.astype(np.float64) - expected64) <= allowed + np.abs(expected - expected64)))


def bit_equal(theirs: np.ndarray, mine: np.ndarray) -> bool:
    """Whether two float32 arrays of one shape hold the same bits (so ``-0.0`` differs from ``0.0``).

    ``theirs`` may be a strided view (a TFLite dense kernel is the transpose of the file's bytes): a
    large 2-d one is compared in square blocks (:func:`alexnet_export.stored.tiles`), and no copy is made.
    What has been compared of a checked TFLite file's mapping is let go (:func:`trust.release_pages`), a
    dense kernel's a block row of the file's matrix at a time, so the check holds little of the file.
    """
    from alexnet_export.trust import release_pages

    theirs, mine = theirs.view(np.uint32), mine.view(np.uint32)
    if not strided(theirs):
        same = bool(np.array_equal(theirs, mine))
        release_pages(theirs)
        return same
    stored, source = theirs.T, mine.T  # in the file's order: each block row is whole rows of its bytes
    for rows, columns in tiles(stored):
        if not np.array_equal(stored[rows, columns], source[rows, columns]):
            return False
        if columns.stop >= stored.shape[1]:  # the block row is done
            release_pages(stored[rows])
    return True


def weight_check(path: Path, fmt: str, precision: str, weights: AlexNetWeights) -> WeightCheck:
    """Comparison of the weights stored in an fp32 artifact with the source: bit-exact, or fold-exact."""
    from alexnet_export.extract import stored_arrays
    from alexnet_export.trust import release_pages

    if precision != "fp32":
        return WeightCheck(str(path), "not applicable")
    try:
        stored, _ = stored_arrays(path, arch=weights.arch)
    except InputError as exc:
        return WeightCheck(str(path), "mismatch", (str(exc),))
    folds = independent_fold(weights) if weights.norms else {}
    mismatches = []
    for name, layer in weights.layers.items():
        other = stored.get(name)
        for index, (part, mine) in enumerate((("kernel", layer.kernel), ("bias", layer.bias))):
            theirs = None if other is None else other[index]
            if theirs is None or theirs.shape != mine.shape:
                mismatches.append(f"{name}/{part} shape {None if theirs is None else theirs.shape} != {mine.shape}")
            elif theirs.dtype != np.float32:
                mismatches.append(f"{name}/{part} stored as {theirs.dtype}, not float32")
            elif name in folds:
                within = _within_fold(theirs, folds[name][index])
                release_pages(theirs)
                if not within:
                    worst = float(np.abs(theirs - folds[name][index]).max())
                    mismatches.append(f"{name}/{part} (folded: off the float64 fold by up to {worst:.3g})")
            elif not bit_equal(theirs, mine):
                count = int(np.count_nonzero(theirs != mine))
                mismatches.append(
                    f"{name}/{part} ({count} values differ, max {float(np.abs(theirs - mine).max()):.3g})"
                )
    status = "mismatch" if mismatches else "fold-exact" if folds else "bit-exact"
    return WeightCheck(str(path), status, tuple(mismatches), tuple(sorted(folds)))


def environment(tf32: bool, rows: list[RowResult]) -> dict[str, Any]:
    """Versions, devices and the LiteRT delegates the rows actually used, for the report."""
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for package in ("tensorflow", "onnx", "onnxruntime", "ai-edge-litert", "tf2onnx", "numpy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    import onnxruntime as ort

    import_tensorflow()  # the shared import: it waits for one in progress on another thread, with fd 2 silenced
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "tf_gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "onnxruntime_providers": ort.get_available_providers(),
        "tf32": tf32,
        "litert_delegates": sorted({row.details["delegate"] for row in rows if "delegate" in row.details}),
    }


def oracle_logits(weights: AlexNetWeights, images: np.ndarray) -> np.ndarray:
    """The float64 oracle's logits of ``images``, kept in the structure cache by what they are computed from.

    The entry's name digests the oracle's source (its module, and the architecture module it computes
    shapes with), the architecture, every weight array and the images (names, dtypes, shapes, bytes), with
    the toolkit's and numpy's versions: another weight set, input batch or oracle is computed again.
    Hashing a full-size weight set's 244 MB lets the GIL go and takes a fraction of the oracle's time.
    ``ALEXNET_EXPORT_CACHE=off`` computes it on every call.
    """
    import io

    import converters.arch
    from alexnet_export import reference
    from alexnet_export.cache import cache_dir, cached_bytes, entry_name

    if cache_dir("oracle") is None:  # off, or not safe to use: nothing to name an entry for
        return forward(weights, images)
    digest = hashlib.sha256()
    for module in (reference, converters.arch):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(weights.arch.dumps().encode())
    for name, array in [*weights.all_arrays().items(), ("images", np.asarray(images))]:
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(np.ascontiguousarray(array).data)
    expected = (len(images), weights.num_classes)
    made: list[np.ndarray] = []

    def make() -> bytes:
        made.append(forward(weights, images))
        stream = io.BytesIO()
        np.save(stream, made[0], allow_pickle=False)
        return stream.getvalue()

    def check(data: bytes, path: Path) -> None:
        try:
            logits = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise InputError(f"{path}: expected the oracle's logits as .npy, received {error}") from error
        if logits.dtype != np.float64 or logits.shape != expected:
            found = f"{logits.dtype} {logits.shape}"
            raise InputError(f"{path}: expected float64 logits of shape {expected}, received {found}")

    data = cached_bytes("oracle", entry_name(("numpy",), digest.hexdigest()), make, check)
    return made[0] if made else np.load(io.BytesIO(data), allow_pickle=False)


def background_oracle(weights: AlexNetWeights, inputs: Inputs) -> Future[np.ndarray]:
    """The float64 oracle logits of ``inputs`` (:func:`oracle_logits`: cached), on a thread of its own.

    numpy's products release the GIL, so the oracle's ~0.5 s runs on the second core while TensorFlow
    exports or the artifacts are checked; ``verify`` waits for it only where a row needs it.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="alexnet-export-oracle")
    try:
        return pool.submit(oracle_logits, weights, inputs.images)
    finally:
        pool.shutdown(wait=False)


def verify(
    paths: list[Path],
    weights: AlexNetWeights,
    *,
    inputs: Inputs,
    device: str = "all",
    tf32: bool = False,
    require_gpu: bool = False,
    tolerance: dict[str, float] | None = None,
    include_graph: bool = True,
    reference_kernels: bool = False,
    labels: Sequence[str] | None = None,
    oracle: Future[np.ndarray] | None = None,
    graph: Any = None,
    describe_environment: bool = True,
) -> Report:
    """Run the parity matrix and the weight checks.

    Args:
        paths: artifacts (SavedModel folders, ``.onnx``, ``.tflite``).
        weights: the source weights; the oracle and the weight checks use them.
        inputs: the images.
        device: ``cpu``, ``gpu`` or ``all``.
        tf32: allow TF32 on GPUs.
        require_gpu: count "no GPU row ran" as a failure.
        tolerance: overrides of the tolerance fields (e.g. ``{"max_rel": 1e-4}``), for every precision.
        include_graph: add the canonical TF graph rows as the first rows.
        reference_kernels: add LiteRT reference-kernel rows for TFLite files.
        labels: class names for the image top-5 (default: ImageNet's, when there are 1000 classes).
        oracle: :func:`background_oracle` of ``weights`` and ``inputs``, when the caller started it earlier.
        graph: the canonical module ``AlexNet(weights)`` for the graph rows, when the caller built it already
            (``export``, which has just saved it as the SavedModel).
        describe_environment: fill the report's ``environment`` (versions, devices), which imports TensorFlow;
            ``False`` leaves it empty, for a part of a report that :func:`alexnet_export.export.merged` completes.

    """
    from alexnet_export import trust
    from alexnet_export.artifacts import artifact_architecture
    from alexnet_export.runtimes import artifact_rows, detect_format, graph_rows

    spec = weights.arch.input
    oracles: dict[tuple[str, bool], np.ndarray | Future[np.ndarray]] = {
        (weights.arch.dumps(), False): oracle or background_oracle(weights, inputs)
    }
    checks: dict[Path, WeightCheck] = {}
    formats = {path: detect_format(path) for path in paths}
    # The sha256 of each artifact's files, for the report, on a thread of its own once the artifact has passed
    # its checks (never before: a refused one is not read): reading and hashing release the GIL, so hashing
    # three full-size artifacts runs beside the runtimes instead of after them.
    hashing = ThreadPoolExecutor(1, thread_name_prefix="alexnet-export-sha256")
    digests: dict[Path, Future[dict[str, str]]] = {}
    recorded: dict[Path, Architecture] = {}
    bound: dict[Path, AlexNetWeights] = {}
    structures: dict[Path, StructureCheck] = {}
    precisions: dict[Path, str] = {}
    embeds: dict[Path, bool] = {}
    fed = {False: inputs.images}  # what each kind of artifact is given, made once

    def feed(path: Path | None) -> tuple[np.ndarray, np.ndarray]:
        """The images to give an artifact (uint8 pictures when it embeds preprocessing) and its oracle logits."""
        images, found = feed_now(path)
        if isinstance(found, Future):
            found = oracles[oracle_key(path)] = found.result()
        return images, found

    def oracle_key(path: Path | None) -> tuple[str, bool]:
        source = bound[path] if path is not None else weights
        return source.arch.dumps(), path is not None and embeds[path]

    def feed_now(path: Path | None) -> tuple[np.ndarray, np.ndarray | Future[np.ndarray]]:
        """As :func:`feed`, without waiting for an oracle still computing in the background."""
        source = bound[path] if path is not None else weights
        key = oracle_key(path)
        embedded = key[1]
        if embedded not in fed:
            fed[embedded] = input_to_rgb(inputs.images, spec)
        if key not in oracles:
            model_input = rgb_to_input(fed[embedded], spec) if embedded else fed[embedded]
            oracles[key] = oracle_logits(source, model_input)
        return fed[embedded], oracles[key]

    def tolerance_for(precision: str) -> Tolerance:
        return replace(TOLERANCES[precision], **(tolerance or {}))

    fed_for: dict[Path, tuple[np.ndarray, np.ndarray | Future[np.ndarray]]] = {}  # made here: feed() memoises

    def artifact(path: Path) -> list[RowResult]:
        return _run_rows(
            partial(artifact_rows, path, tf32=tf32, reference_kernels=reference_kernels), device,
            str(path), precisions[path], *fed_for[path], tolerance_for(precisions[path]),
        )

    def checked(path: Path) -> None:
        """Check one artifact before any runtime loads it: what it is, its structure and its weights.

        What it is is read from its content; its file is read once (trust.parsed_once) and let go before the
        next is read.
        """
        with trust.parsed_once():
            recorded[path] = artifact_architecture(path)
            bound[path] = with_architecture(weights, recorded[path], path)
            check = check_structure(path, formats[path], bound[path])
            claims = claimed_architecture(path, recorded[path]) + claimed_architecture(path, weights.arch)
            if claims:
                check = replace(check, status="differs", differences=(*claims, *check.differences))
            structures[path] = check
            checks[path] = weight_check(path, formats[path], check.content.precision, bound[path])
        precisions[path] = check.content.precision
        embeds[path] = check.content.embed_preprocessing
        digests[path] = hashing.submit(tree_sha256, path)  # an export's files are remembered: not read again

    # The artifacts that TensorFlow does not run are checked and run first, while a caller may still be
    # importing TensorFlow on another thread (the CLI does), and their runtimes then never run on top of the
    # memory TensorFlow's kernels keep. The first ONNX file's rows run on a second thread, started as soon as
    # that file has passed its checks: ONNX Runtime loads and computes without the GIL while this thread
    # checks the artifacts after it. LiteRT, which holds the most memory, runs after it; TensorFlow's rows
    # last. One artifact's runtimes at a time otherwise, so one copy of its weights. A refused artifact
    # still ends verify with exit 2, and the report keeps the order of ``paths``.
    elsewhere = [path for path in paths if formats[path] != "savedmodel"]
    beside = [path for path in elsewhere if formats[path] == "onnx"][:1]
    results: dict[Path, list[RowResult]] = {}
    with ThreadPoolExecutor(1, thread_name_prefix="alexnet-export-rows") as pool:
        pending: dict[Path, Future[list[RowResult]]] = {}
        for path in elsewhere:
            checked(path)
            if path in beside:  # its runtime loads and runs now; its rows wait for the oracle only to compare
                fed_for[path] = feed_now(path)
                pending[path] = pool.submit(artifact, path)
        for path in elsewhere:
            if path not in fed_for:
                fed_for[path] = feed_now(path)
        for path, future in pending.items():
            results[path] = future.result()
    for path in elsewhere:
        if path not in results:
            results[path] = artifact(path)
    graph_results: list[RowResult] = []
    if include_graph or len(elsewhere) < len(paths):
        import_tensorflow()  # waits for an import in progress on another thread
    for path in paths:
        if path not in results:
            checked(path)
            fed_for[path] = feed_now(path)
    if include_graph:
        graph_results = _run_rows(
            partial(graph_rows, weights, tf32=tf32, module=graph), device, "weights (canonical graph)", "fp32",
            *feed(None), tolerance_for("fp32"),
        )
    for path in paths:
        if path not in results:
            results[path] = artifact(path)
    rows = graph_results + [row for path in paths for row in results[path]]
    files = {path: digests[path].result() for path in paths}
    hashing.shutdown()
    source = weights.source
    pictures = [s for s in inputs.sources if s.startswith(("fixtures: ", "--images: "))]
    probabilities = softmax(feed(None)[1][len(inputs.images) - len(pictures) :])
    image_top5 = tuple(
        {"source": name, "predictions": top_k_classes(p, min(5, p.shape[0]), labels=labels)}
        for name, p in zip(pictures, probabilities, strict=True)
    )
    return Report(
        rows=tuple(rows),
        weights=tuple(checks[p] for p in paths),
        inputs=inputs,
        artifacts={
            str(p): {
                "format": formats[p], "precision": precisions[p], "architecture": bound[p].arch.name,
                "content": structures[p].content.to_json(), "files": files[p],
            }
            for p in paths
        },
        environment=environment(tf32, rows) if describe_environment else {},
        source={"path": source.path, "sha256": source.sha256, "format": source.format} if source else {},
        require_gpu=require_gpu,
        image_top5=image_top5,
        structures=tuple(structures[p] for p in paths),
    )


@dataclass(frozen=True)
class AccuracyProfile:
    """One artifact's accuracy on one runtime, for ``npy2tflite``'s summary."""

    row: RowResult
    size: int

    @property
    def failures(self) -> tuple[str, ...]:
        """What missed the tolerance."""
        return self.row.failures

    def line(self) -> str:
        """A one-line summary."""
        m = self.row.metrics
        if m is None:
            return f"accuracy: {self.row.status} ({'; '.join(self.row.failures) or self.row.reason})"
        verdict = "within" if not self.row.failures else "OUTSIDE"
        return (
            f"accuracy vs float64 oracle ({m.shape[0]} images, {self.row.runtime}): max_abs {m.max_abs:.3g}, "
            f"max_rel {m.max_rel:.3g}, cosine {m.cosine:.6f}, top-1 {m.top1:.2f}, top-5 {m.top5:.2f}, "
            f"{self.size / 2**20:.1f} MiB; {verdict} the {self.row.precision} tolerance"
            + (f": {'; '.join(self.row.failures)}" if self.row.failures else "")
        )


def with_architecture(weights: AlexNetWeights, arch: Architecture, where: Path | str) -> AlexNetWeights:
    """``weights`` validated against ``arch`` (an artifact's own), or ``weights`` when that is theirs already.

    Raises:
        InputError: the weights do not fit the artifact's architecture.

    """
    try:
        return with_arch(weights, arch)
    except InputError as exc:
        raise InputError(f"{where}: implements architecture {arch.name}, which the weights do not fit: {exc}") from None


def accuracy_profile(path: Path, weights: AlexNetWeights, *, precision: str, count: int = 8) -> AccuracyProfile:
    """The first runtime row (LiteRT XNNPACK for TFLite) of ``path`` on ``count`` synthetic images."""
    from alexnet_export.runtimes import artifact_rows

    spec = weights.arch.input
    images = synthetic_images(count, seed=0, spec=spec)
    if embeds_preprocessing(Path(path)):
        images = input_to_rgb(images, spec)
        expected = oracle_logits(weights, rgb_to_input(images, spec))
    else:
        expected = oracle_logits(weights, images)
    runner = artifact_rows(path)[0]
    row = _row(str(path), precision, runner, images, expected, TOLERANCES[precision])
    return AccuracyProfile(row, Path(path).stat().st_size)
