"""Every preset of NETWORKS.md: synthesize, export to every format, verify, extract back; JSON round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converters.arch import PRESETS, ArchError, from_json, load_arch, parameter_count, trace
from converters.bvlc_npy import read_npy, write_npy
from converters.errors import WeightsError
from converters.hdf5 import read_h5, write_h5
from converters.synthetic import synthesize

SMALL = {"bvlc-alexnet": 8, "guerzhoy": 8, "tfnn-paper": 8, "keras-v1": 8, "keras-v2": 8, "oxflower17-bn": 8, "mnist": 4}

# NETWORKS.md: input, feature map before the flatten, and the source's parameter count where it states one
FACTS = {
    "bvlc-alexnet": ((227, 227, 3), (6, 6, 256), 60_965_224),
    "guerzhoy": ((227, 227, 3), (6, 6, 256), 60_965_224),
    "tfnn-paper": ((224, 224, 3), (6, 6, 256), 60_965_224),
    "keras-v1": ((224, 224, 3), (6, 6, 128), None),
    "keras-v2": ((224, 224, 3), (6, 6, 128), None),
    "oxflower17-bn": ((224, 224, 3), (1, 1, 256), 28_096_769),  # "about 28.1 M"
    "mnist": ((28, 28, 1), (4, 4, 256), None),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_shapes_follow_networks_md(name: str) -> None:
    arch = PRESETS[name]
    shapes = trace(arch)
    flatten = next(i for i, layer in enumerate(arch.layers) if layer.type == "flatten")
    source_input, before_flatten, parameters = FACTS[name]
    assert shapes[0] == source_input and shapes[flatten] == before_flatten
    if parameters is not None:
        assert parameter_count(arch) == parameters


def test_guerzhoy_and_oxflower_feature_maps() -> None:
    guerzhoy = trace(PRESETS["guerzhoy"])
    assert guerzhoy[1] == (57, 57, 96)  # conv1 SAME at stride 4
    oxflower = trace(PRESETS["oxflower17-bn"])
    assert [s[:2] for s in oxflower[1:4]] == [(54, 54), (54, 54), (27, 27)]
    assert PRESETS["oxflower17-bn"].num_classes == 17 and PRESETS["mnist"].num_classes == 10


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip_is_equal(name: str) -> None:
    arch = PRESETS[name]
    text = json.dumps(arch.to_json())
    assert from_json(json.loads(text)) == arch


def test_lrn_conventions_are_converted_exactly() -> None:
    paper = next(layer for layer in PRESETS["tfnn-paper"].layers if layer.type == "lrn")
    assert (paper.size, paper.k, paper.beta) == (5, 2.0, 0.75)  # type: ignore[union-attr]
    assert np.float32(paper.tf_alpha) == np.float32(1e-4)  # type: ignore[union-attr]
    mnist = next(layer for layer in PRESETS["mnist"].layers if layer.type == "lrn")
    assert mnist.size == 9 and mnist.tf_depth_radius == 4  # type: ignore[union-attr]
    assert np.float32(mnist.tf_alpha) == np.float32(0.001 / 9.0)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(lambda d: d["layers"].insert(0, {"type": "dense", "name": "x", "units": 3}),
                     r"layers\[0\] \(dense x\): expected a flatten before the first dense layer", id="dense-first"),
        pytest.param(lambda d: d["layers"][0].update(kernel=[11]), r"layers\[0\].kernel: expected a positive integer or \[h, w\]",
                     id="bad-kernel"),
        pytest.param(lambda d: d["layers"][0].update(groups=5), r"layers\[0\] \(conv conv1\): expected input \(3\) and output \(96\) channels divisible by 5", id="groups"),
        pytest.param(lambda d: d["layers"][2].update(size=4), r"layers\[2\].size: expected an odd window", id="even-lrn"),
        pytest.param(lambda d: d["layers"][1].update(type="gelu"), r"layers\[1\].type: expected one of conv, zeropad", id="unknown-type"),
        pytest.param(lambda d: d["layers"][0].update(stride=[40, 40]), r"feature map shrinks", id="shrinks"),
        pytest.param(lambda d: d["input"].update(channels=1), r"expected 3 channels for BGR/RGB or 1 for GRAY", id="channels"),
        pytest.param(lambda d: d.update(extra=1), r"unknown field 'extra'", id="unknown-field"),
    ],
)
def test_bad_json_names_the_layer(tmp_path: Path, edit, message: str) -> None:
    data = PRESETS["bvlc-alexnet"].to_json()
    edit(data)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchError, match=message):
        load_arch(str(path))


def test_custom_json_network_is_a_real_architecture(tmp_path: Path) -> None:
    """The README's worked example: bvlc-alexnet edited to a 64x80 grey input with a BN and 5 classes."""
    data = PRESETS["mnist"].to_json()
    data["name"] = "my-net"
    data["input"].update(height=32, width=24)  # asymmetric on purpose
    data["layers"].insert(1, {"type": "batchnorm", "name": "bn1", "epsilon": 0.001})
    data["layers"][-1]["units"] = 5
    path = tmp_path / "my-net.json"
    path.write_text(json.dumps(data))
    arch = load_arch(str(path))
    weights = synthesize(arch=arch, width_divisor=4)
    assert weights.num_classes == 5 and list(weights.norms) == ["bn1"]
    assert trace(arch)[-1] == (1, 1, 5)


@pytest.mark.parametrize("name", list(PRESETS))
def test_weights_round_trip_npy_and_h5(tmp_path: Path, name: str) -> None:
    arch = PRESETS[name]
    weights = synthesize(arch=arch, width_divisor=SMALL[name], num_classes=7, seed=5)
    write_npy(weights, tmp_path / "w.npy")
    write_h5(weights, tmp_path / "w.h5")
    assert read_npy(tmp_path / "w.npy", arch=arch).bit_equal(weights)
    from_h5 = read_h5(tmp_path / "w.h5")  # the HDF5 file records its architecture
    assert from_h5.bit_equal(weights) and from_h5.arch == arch


def test_wrong_architecture_names_the_first_layer(tmp_path: Path) -> None:
    weights = synthesize(arch=PRESETS["keras-v1"], width_divisor=8)
    write_npy(weights, tmp_path / "w.npy")
    with pytest.raises(WeightsError, match=r"unknown layer 'fc1'; expected only conv1, .*fc8 \(architecture bvlc-alexnet\)"):
        read_npy(tmp_path / "w.npy")
    # keras-v2 shares keras-v1's tables but for the dense widths, which are read from the weights
    assert read_npy(tmp_path / "w.npy", arch=PRESETS["keras-v2"]).widths["fc1"] == 256
    from converters.weights import build_weights

    arrays = {n: [layer.kernel, layer.bias] for n, layer in synthesize(arch=PRESETS["tfnn-paper"], width_divisor=16).layers.items()}
    arrays["conv1"] = [np.zeros((5, 5, 3, 6), np.float32), np.zeros(6, np.float32)]
    with pytest.raises(WeightsError, match=r"w.npy: layer conv1 kernel: expected shape \(11, 11, 3, 6\), received \(5, 5, 3, 6\)"):
        build_weights(arrays, arch=PRESETS["tfnn-paper"], where="w.npy")


def test_h5_refuses_another_architecture(tmp_path: Path) -> None:
    write_h5(synthesize(arch=PRESETS["mnist"], width_divisor=4), tmp_path / "w.h5")
    with pytest.raises(WeightsError, match=r"expected architecture bvlc-alexnet \(--arch\), received a file written for mnist"):
        read_h5(tmp_path / "w.h5", arch=PRESETS["bvlc-alexnet"])


def test_batchnorm_synthetic_statistics_are_not_trivial() -> None:
    weights = synthesize(arch=PRESETS["oxflower17-bn"], width_divisor=8)
    assert list(weights.norms) == [f"bn{i}" for i in range(1, 9)]
    for norm in weights.norms.values():
        assert np.abs(norm.mean).max() > 0.1 and np.abs(norm.variance - 1).max() > 0.1
        assert (norm.variance >= 0.5).all() and np.abs(norm.gamma - 1).max() > 0.05
