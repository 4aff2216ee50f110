"""Shared fixtures: small seeded weights with asymmetric shapes (N != C != H != W), images, a CLI runner."""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from converters.arch import PRESETS
from converters.bvlc_npy import write_npy
from converters.synthetic import synthesize
from converters.weights import AlexNetWeights

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The small TFLite conversions are cached in a folder of this run's own (inherited by CLI subprocesses),
# never in the user's ~/.cache; tests of the cache itself point it elsewhere.
if "ALEXNET_EXPORT_CACHE" not in os.environ:
    os.environ["ALEXNET_EXPORT_CACHE"] = tempfile.mkdtemp(prefix="alexnet-export-test-cache-")
    atexit.register(shutil.rmtree, os.environ["ALEXNET_EXPORT_CACHE"], True)

BGR_MEAN = PRESETS["bvlc-alexnet"].input.mean
SMALL = {"seed": 3, "width_divisor": 8, "num_classes": 17}


@pytest.fixture(scope="session")
def small_weights() -> AlexNetWeights:
    return synthesize(**SMALL)


@pytest.fixture(scope="session")
def small_npy(tmp_path_factory: pytest.TempPathFactory, small_weights: AlexNetWeights) -> Path:
    path = tmp_path_factory.mktemp("weights") / "small.npy"
    write_npy(small_weights, path)
    return path


@pytest.fixture(scope="session")
def small_artifacts(tmp_path_factory: pytest.TempPathFactory, small_weights: AlexNetWeights) -> Path:
    """``m.onnx``, ``sm`` (SavedModel) and ``m.tflite`` of the small weights, with their manifests; read-only."""
    from alexnet_export.exporters.onnx import export_onnx
    from alexnet_export.exporters.savedmodel import export_savedmodel
    from alexnet_export.exporters.tflite import export_tflite

    out = tmp_path_factory.mktemp("small-artifacts")
    export_onnx(small_weights, out / "m.onnx")
    export_savedmodel(small_weights, out / "sm")
    export_tflite(small_weights, out / "m.tflite")
    return out


def make_images(batch: int, seed: int = 0) -> np.ndarray:
    """Seeded mean-subtracted BGR images with some spatial structure, float32 NHWC."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, size=(batch, 227, 227, 3))
    ramp = np.linspace(0, 60, 227)[None, :, None, None]
    return (np.clip(base * 0.7 + ramp, 0, 255) - np.asarray(BGR_MEAN)).astype(np.float32)


@pytest.fixture(scope="session")
def images5() -> np.ndarray:
    return make_images(5)


def npy_with(path: Path, payload: Any, protocol: int = 3) -> Path:
    """Write ``payload`` the way np.save writes a pickled object (0-d object array, given protocol)."""
    header = {"descr": "|O", "fortran_order": False, "shape": ()}
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        holder = np.empty((), dtype=object)
        holder[()] = payload
        pickle.dump(holder, out, protocol=protocol)
    return path


def raw_pickle_npy(path: Path, pickle_bytes: bytes) -> Path:
    """An .npy object header followed by arbitrary pickle bytes."""
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": ()})
        out.write(pickle_bytes)
    return path


def layer_dict(weights: AlexNetWeights) -> dict[str, list[np.ndarray]]:
    return {name: [np.array(layer.kernel), np.array(layer.bias)] for name, layer in weights.layers.items()}


@pytest.fixture(scope="session")
def full_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Full-size synthetic weights written by the installed console script (for slow tests)."""
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("full") / "synthetic_alexnet.npy"
    subprocess.run([Path(sys.executable).parent / "alexnet-export", "synthesize", path], check=True, capture_output=True)
    return path


@pytest.fixture()
def cli() -> Callable[..., Any]:
    from alexnet_export.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, [str(a) for a in args])

    return invoke
