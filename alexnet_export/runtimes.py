"""One runner per (artifact format, runtime, device), all with the same call: NHWC images -> logits.

What can run is detected, never assumed: a GPU that is not visible, an execution provider that this
onnxruntime build lacks, or a runtime that is not installed becomes an :class:`Unavailable` row with
the reason, which the verifier reports as *not verified* (never as passed).

- ``graph``: the canonical TF graph built from the weights, on CPU and each visible GPU.
- ``savedmodel``: the reloaded SavedModel's ``serving_default``, on CPU and each visible GPU.
- ``onnx``: ONNX Runtime with the CPU, CUDA and TensorRT execution providers.
- ``tflite``: the LiteRT interpreter with XNNPACK (its default) and with the reference kernels.

On GPUs, TF32 matmuls/convolutions are turned off unless ``tf32=True`` (parity is measured at full
fp32 precision by default; ``--tf32`` measures what TF32 costs).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_export.quiet import fds_silenced
from converters.errors import InputError
from converters.weights import AlexNetWeights

FORMATS: tuple[str, ...] = ("graph", "savedmodel", "onnx", "tflite")


@dataclass(frozen=True)
class Runner:
    """A runtime that can compute logits.

    Attributes:
        format: ``graph``, ``savedmodel``, ``onnx`` or ``tflite``.
        runtime: what runs it, e.g. ``onnxruntime CPUExecutionProvider`` or ``LiteRT XNNPACK``.
        device: ``cpu`` or ``gpu:N``.
        run: float32 NHWC images -> float32 logits.
        details: facts for the report (versions, providers, TF32).

    """

    format: str
    runtime: str
    device: str
    run: Callable[[np.ndarray], np.ndarray]
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unavailable:
    """A (format, runtime, device) row that could not run here, and why."""

    format: str
    runtime: str
    device: str
    reason: str


Row = Runner | Unavailable


def detect_format(path: str | os.PathLike[str]) -> str:
    """``savedmodel``, ``onnx`` or ``tflite`` from what is at ``path``.

    Raises:
        InputError: nothing there, or not an artifact this toolkit writes.

    """
    target = Path(path)
    if target.is_dir():
        if (target / "saved_model.pb").is_file():
            return "savedmodel"
        raise InputError(f"{target}: expected a SavedModel folder (saved_model.pb), received a folder without one")
    if not target.is_file():
        raise InputError(f"{target}: no such artifact")
    suffix = target.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".tflite":
        return "tflite"
    raise InputError(
        f"{target}: expected a SavedModel folder, a .onnx or a .tflite file, received {suffix or 'no suffix'}"
    )


def _gpus() -> list[str]:
    import tensorflow as tf

    return [f"gpu:{index}" for index, _ in enumerate(tf.config.list_physical_devices("GPU"))]


def _set_tf32(enabled: bool) -> None:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(enabled)


def _tf_rows(fmt: str, call: Callable[[Any], Any], devices: list[str], tf32: bool) -> list[Row]:
    import tensorflow as tf

    rows: list[Row] = []
    for device in ["cpu", *devices]:
        tf_device = "/CPU:0" if device == "cpu" else f"/GPU:{device.split(':')[1]}"

        def run(images: np.ndarray, tf_device: str = tf_device) -> np.ndarray:
            with tf.device(tf_device):
                return np.asarray(call(tf.constant(images)))

        details = {"tensorflow": tf.__version__}
        if device != "cpu":
            details["tf32"] = "on" if tf32 else "off"
        rows.append(Runner(fmt, f"TensorFlow {tf.__version__}", device, run, details))
    if not devices:
        rows.append(Unavailable(fmt, f"TensorFlow {tf.__version__}", "gpu", "no GPU visible to TensorFlow"))
    return rows


def graph_rows(weights: AlexNetWeights, *, tf32: bool = False, module: Any = None) -> list[Row]:
    """The canonical TF graph of ``weights`` on CPU and every visible GPU.

    ``module``: ``AlexNet(weights)`` when the caller has built it already (``export`` saves it as the
    SavedModel first); else it is built here.
    """
    from alexnet_export.graph import AlexNet

    _set_tf32(tf32)
    built = module if module is not None else AlexNet(weights)
    return _tf_rows("graph", lambda x: built.serve(x)["logits"], _gpus(), tf32)


def savedmodel_rows(path: Path, *, tf32: bool = False) -> list[Row]:
    """The reloaded SavedModel's ``serving_default`` on CPU and every visible GPU."""
    import tensorflow as tf

    _set_tf32(tf32)
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    return _tf_rows("savedmodel", lambda x: signature(images=x)["logits"], _gpus(), tf32)


def onnx_layout(session: Any) -> str:
    """``nhwc`` when the session's ``images`` input ends in its channels (1 or 3), else ``nchw``."""
    shape = session.get_inputs()[0].shape
    return "nchw" if len(shape) == 4 and shape[-1] not in (1, 3) else "nhwc"


ONNX_PROVIDERS: dict[str, str] = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "gpu:0",
    "TensorrtExecutionProvider": "gpu:0",
}


def onnx_rows(path: Path) -> list[Row]:
    """ONNX Runtime with each execution provider this build and machine offer."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    rows: list[Row] = []
    for provider, device in ONNX_PROVIDERS.items():
        runtime = f"onnxruntime {ort.__version__} {provider}"
        if provider not in available:
            rows.append(Unavailable("onnx", runtime, device, f"{provider} is not in this onnxruntime build"))
            continue
        session = ort.InferenceSession(str(path), providers=[provider])
        if provider not in session.get_providers():
            rows.append(Unavailable("onnx", runtime, device, f"{provider} failed to initialise"))
            continue
        nchw = onnx_layout(session) == "nchw"

        def run(images: np.ndarray, session: Any = session, nchw: bool = nchw) -> np.ndarray:
            feed = np.ascontiguousarray(images.transpose(0, 3, 1, 2)) if nchw else images
            return np.asarray(session.run(["logits"], {"images": feed})[0])

        rows.append(Runner("onnx", runtime, device, run, {"onnxruntime": ort.__version__, "provider": provider}))
    return rows


# LiteRT runs the images a few at a time. Its activations grow with the batch, and its rows run on top of the
# mapped file and XNNPACK's packed copy of the weights, the largest runtime footprint verify has (the peak of a
# first-run export). The logits are the same bits at every batch size (sha256 compared for 1, 2, 4 and 11
# full-size images); ONNX Runtime's and TensorFlow's rows are not where the peaks are, and run the batch whole.
LITERT_IMAGES_PER_CALL = 2


def tflite_rows(path: Path, *, reference_kernels: bool = False) -> list[Row]:
    """The LiteRT interpreter with XNNPACK (its default) and, on request, with the reference kernels.

    The reference kernels are opt-in: LiteRT 2.3's reference LRN kernel does not compute TF's LRN
    (measured 2.57 max abs error on N(0, 30) inputs where XNNPACK's builtin is within 4e-6), so
    that row fails on every AlexNet file whatever the file holds.
    """
    from ai_edge_litert import interpreter as litert

    resolvers = [("XNNPACK", litert.OpResolverType.AUTO)]
    if reference_kernels:
        resolvers.append(("reference kernels", litert.OpResolverType.BUILTIN_REF))
    rows: list[Row] = []
    for label, resolver in resolvers:
        with fds_silenced(2):
            interpreter = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
        runner = interpreter.get_signature_runner("serving_default")

        def run(images: np.ndarray, runner: Any = runner, keep: Any = interpreter) -> np.ndarray:
            starts = range(0, max(len(images), 1), LITERT_IMAGES_PER_CALL)
            with fds_silenced(2):  # "Created TensorFlow Lite XNNPACK delegate" on the first call
                return np.concatenate(
                    [np.asarray(runner(images=images[i : i + LITERT_IMAGES_PER_CALL])["logits"]) for i in starts]
                )

        rows.append(Runner("tflite", f"LiteRT {label}", "cpu", run, {"delegate": label}))
    return rows


def artifact_rows(path: str | os.PathLike[str], *, tf32: bool = False, reference_kernels: bool = False) -> list[Row]:
    """Every runner (and unavailable row) for the artifact at ``path``."""
    from alexnet_export.trust import check_artifact

    target = Path(path)
    fmt = detect_format(target)
    check_artifact(target, fmt)  # nothing is loaded before its ops and sizes are checked
    if fmt == "savedmodel":
        return savedmodel_rows(target, tf32=tf32)
    if fmt == "onnx":
        return onnx_rows(target)
    return tflite_rows(target, reference_kernels=reference_kernels)


def on_device(rows: list[Row], device: str) -> list[Row]:
    """Rows for ``cpu``, ``gpu`` or ``all``."""
    if device == "all":
        return rows
    return [row for row in rows if row.device.split(":")[0] == device]
