"""TFLite fp32/fp16 by placement (issue: speed): the structure converted at two small widths, the weights placed.

The result must be what the converter writes: at a width the test can afford to convert directly, the
same bytes; at full size (slow tier), the same ops, tensors, buffers and LiteRT output, tensor order aside.
"""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_export.exporters import tflite_placement
from alexnet_export.exporters.tflite import TFLiteOptions, convert
from alexnet_export.stored import graph_params
from converters.arch import PRESETS
from converters.synthetic import synthesize
from converters.weights import AlexNetWeights, build_weights


def placed(weights: AlexNetWeights, options: TFLiteOptions) -> bytes:
    model = tflite_placement.placed_model(
        weights, lambda small: convert(small, options, placement=False), lambda w: graph_params(w, options.groups)[1]
    )
    return bytes(tflite_placement.pack(model))


@pytest.fixture(scope="module")
def quarter() -> AlexNetWeights:
    return synthesize(seed=5, width_divisor=4, num_classes=10)


@pytest.mark.parametrize(
    "options",
    [
        TFLiteOptions(),
        TFLiteOptions(precision="fp16"),
        TFLiteOptions(groups="split"),
        TFLiteOptions(groups="dense"),
        TFLiteOptions(embed_preprocessing=True),
    ],
    ids=["fp32", "fp16", "split", "dense", "embedded"],
)
def test_placement_writes_the_converters_bytes(quarter: AlexNetWeights, options: TFLiteOptions) -> None:
    assert placed(quarter, options) == convert(quarter, options, placement=False)


@pytest.mark.parametrize("preset", ["tfnn-paper", "keras-v1", "oxflower17-bn"])
def test_placement_matches_the_converter_for_other_presets(preset: str) -> None:
    weights = synthesize(seed=2, width_divisor=4, arch=PRESETS[preset])
    options = TFLiteOptions()
    assert convert(weights, options) == convert(weights, options, placement=False)


def test_widths_no_divisor_pair_fits_fall_back_to_the_converter(small_weights: AlexNetWeights) -> None:
    with pytest.raises(tflite_placement.NotPlaceable, match="no width divisor pair"):
        placed(small_weights, TFLiteOptions())  # 12 conv1 channels: /4 leaves 3 for conv2's two groups
    assert convert(small_weights, TFLiteOptions()) == convert(small_weights, TFLiteOptions(), placement=False)


def test_identical_weight_buffers_fall_back_because_the_converter_merges_them(quarter: AlexNetWeights) -> None:
    arrays = {name: [layer.kernel, layer.bias] for name, layer in quarter.layers.items()}
    arrays["fc7"][1] = arrays["fc6"][1].copy()  # two equal biases: the converter keeps one buffer
    twins = build_weights(arrays, arch=quarter.arch, where="test")
    with pytest.raises(tflite_placement.NotPlaceable, match="identical"):
        placed(twins, TFLiteOptions())
    assert convert(twins, TFLiteOptions()) == convert(twins, TFLiteOptions(), placement=False)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_full_size_placement_is_the_converters_model(precision: str, tmp_path) -> None:
    from ai_edge_litert import interpreter as litert
    from ai_edge_litert import schema_py_generated as schema

    from alexnet_export.structure import compare_tflite
    from tests.conftest import make_images

    weights = synthesize(seed=0)
    options = TFLiteOptions(precision=precision)
    mine, theirs = placed(weights, options), bytes(convert(weights, options, placement=False))
    assert len(mine) == len(theirs)
    parsed = [schema.Model.GetRootAs(data, 0) for data in (mine, theirs)]
    differences = compare_tflite(parsed[0], parsed[1], 1)
    # Every op, option and tensor is the converter's. At full size the converter moves its largest constant
    # (fc6's 151 MB) to another index, which reorders fp16's independent DEQUANTIZE ops; nothing else may differ.
    allowed = [d for d in differences if precision == "fp16" and d.startswith("graph: ops in another order")]
    assert differences == allowed
    from tensorflow.lite.python import schema_py_generated as objects

    by_name = []
    for data in (mine, theirs):
        model = objects.ModelT.InitFromPackedBuf(bytearray(data), 0)
        by_name.append(
            {
                t.name: np.asarray(model.buffers[t.buffer].data).tobytes()
                for t in model.subgraphs[0].tensors
                if model.buffers[t.buffer].data is not None
            }
        )
    assert by_name[0].keys() == by_name[1].keys() and all(by_name[0][k] == by_name[1][k] for k in by_name[0])
    images = make_images(2)
    outputs = []
    for data in (mine, theirs):
        runner = litert.Interpreter(model_content=data).get_signature_runner("serving_default")
        outputs.append(runner(images=images)["logits"])
    assert np.array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("dtype", ["<f4", "<f2"])
def test_a_transposed_slot_is_written_block_by_block_as_one_copy_would(dtype: str) -> None:
    from alexnet_export.stored import TILE, strided

    source = np.random.default_rng(3).standard_normal((TILE * 3 + 7, TILE * 2 + 1)).astype(np.float32)
    piece = source.T  # a dense kernel as TFLite stores it: (out, in), a view across the source's strides
    assert strided(piece)
    slot = tflite_placement.Slot(piece, np.dtype(dtype))
    assert slot.make().tobytes() == np.ascontiguousarray(piece).astype(dtype).tobytes()
