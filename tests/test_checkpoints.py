"""TensorFlow checkpoints as their users hold them: a TF1 ``Saver`` checkpoint with its ``.meta`` (the tf.nn
AlexNet with split-conv-concat groups and named variables; the MNIST net with unnamed ``Variable``s and a
training graph around it), exported with no --arch and matched against the graph's own logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1


def _grouped_conv(x: Any, kernel: Any, stride: int, groups: int) -> Any:
    """The tf.nn tutorials' grouped convolution: split input and kernel, convolve, concatenate."""
    if groups == 1:
        return tf.nn.conv2d(x, kernel, [1, stride, stride, 1], "SAME")
    parts = tf.split(x, groups, 3)
    kernels = tf.split(kernel, groups, 3)
    return tf.concat(
        [tf.nn.conv2d(p, k, [1, stride, stride, 1], "SAME") for p, k in zip(parts, kernels, strict=True)], 3
    )


def _tfnn_paper(prefix: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """tfnn-paper (NETWORKS.md) at 1/8 width in a TF1 graph with dropout and a loss; saved with Saver."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    images = rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 224, 224, 3], name="images")
        keep = tf1.placeholder_with_default(1.0, [], name="keep_prob")
        h = x
        specs = [
            ("conv1", 11, 3, 12, 4, 1),
            ("conv2", 5, 12, 32, 1, 2),
            ("conv3", 3, 32, 48, 1, 1),
            ("conv4", 3, 48, 48, 1, 2),
            ("conv5", 3, 48, 32, 1, 2),
        ]
        for name, k, c_in, c_out, stride, groups in specs:
            with tf1.variable_scope(name):
                w = tf1.get_variable(
                    "weights", initializer=rng.normal(0, 0.05, (k, k, c_in // groups, c_out)).astype(np.float32)
                )
                b = tf1.get_variable("biases", initializer=rng.normal(0, 0.1, c_out).astype(np.float32))
            h = tf.nn.relu(tf.nn.bias_add(_grouped_conv(h, w, stride, groups), b))
            if name in ("conv1", "conv2"):
                h = tf.nn.local_response_normalization(h, depth_radius=2, alpha=1e-4, beta=0.75, bias=2.0)
            if name in ("conv1", "conv2", "conv5"):
                h = tf.nn.max_pool2d(h, 3, 2, "VALID")
        h = tf.reshape(h, [-1, 6 * 6 * 32])
        for name, n_in, n_out in (("fc6", 6 * 6 * 32, 64), ("fc7", 64, 64), ("fc8", 64, 10)):
            with tf1.variable_scope(name):
                w = tf1.get_variable("weights", initializer=rng.normal(0, 0.05, (n_in, n_out)).astype(np.float32))
                b = tf1.get_variable("biases", initializer=rng.normal(0, 0.1, n_out).astype(np.float32))
            h = tf.matmul(h, w) + b
            if name != "fc8":
                h = tf1.nn.dropout(tf.nn.relu(h), keep_prob=keep)
        logits = h
        labels = tf1.placeholder(tf.float32, [None, 10])
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        tf1.train.MomentumOptimizer(0.01, 0.9).minimize(loss)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            expected = session.run(logits, {x: images})
            tf1.train.Saver().save(session, str(prefix))
    return images, expected


def _mnist(prefix: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST net at 1/4 width: unnamed variables created wc1..out, then bc1..out (keys Variable..Variable_11)."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    pixels = rng.uniform(0, 1, (3, 784)).astype(np.float32)
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 784])
        keep = tf1.placeholder(tf.float32)
        shapes = [(3, 3, 1, 16), (3, 3, 16, 32), (3, 3, 32, 64), (4 * 4 * 64, 256), (256, 64), (64, 10)]
        kernels = [tf.Variable(rng.normal(0, 0.1, s).astype(np.float32)) for s in shapes]
        biases = [tf.Variable(rng.normal(0, 0.1, s[-1]).astype(np.float32)) for s in shapes]
        h = tf.reshape(x, [-1, 28, 28, 1])
        for w, b in zip(kernels[:3], biases[:3], strict=True):
            h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, w, [1, 1, 1, 1], "SAME"), b))
            h = tf.nn.max_pool2d(h, 2, 2, "SAME")
            h = tf1.nn.lrn(h, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)
            h = tf1.nn.dropout(h, keep)
        h = tf.reshape(h, [-1, 4 * 4 * 64])
        h = tf.nn.relu(tf.matmul(h, kernels[3]) + biases[3])
        h = tf.nn.relu(tf.matmul(h, kernels[4]) + biases[4])
        pred = tf.add(tf.matmul(h, kernels[5]), biases[5])
        tf.argmax(pred, 1)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            expected = session.run(pred, {x: pixels, keep: 1.0})
            tf1.train.Saver().save(session, str(prefix))
    return pixels.reshape(-1, 28, 28, 1), expected


def _check_artifacts(out: Path, images: np.ndarray, expected: np.ndarray) -> None:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    scale = np.abs(expected).max()
    session = ort.InferenceSession(str(out / "alexnet.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["logits"], {"images": images})[0] - expected).max() <= 1e-5 * scale
    saved = tf.saved_model.load(str(out / "savedmodel")).signatures["serving_default"]
    assert np.abs(saved(images=tf.constant(images))["logits"].numpy() - expected).max() <= 1e-5 * scale
    runner = Interpreter(model_path=str(out / "alexnet_fp32.tflite")).get_signature_runner()
    assert np.abs(runner(images=images)["logits"] - expected).max() <= 1e-5 * scale


@pytest.mark.parametrize(
    ("build", "preset", "given"), [(_tfnn_paper, "tfnn-paper", "prefix"), (_mnist, "mnist", "folder")]
)
def test_a_saver_checkpoint_with_its_meta_exports_with_no_arch(
    cli, tmp_path: Path, build: Any, preset: str, given: str
) -> None:
    images, expected = build(tmp_path / "ckpt" / "model.ckpt", seed=3)
    source = tmp_path / "ckpt" / "model.ckpt" if given == "prefix" else tmp_path / "ckpt"
    result = cli("export", source, tmp_path / "out", "--batch", "2", "--quiet")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "alexnet-export.json").read_text())
    assert manifest["architecture"]["name"] == preset
    _check_artifacts(tmp_path / "out", images, expected)


def test_inspect_names_the_variables_each_layer_came_from(cli, tmp_path: Path) -> None:
    _mnist(tmp_path / "model.ckpt", seed=1)
    result = cli("inspect", tmp_path / "model.ckpt", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["architecture"] == "mnist" and report["source_format"] == "tf-checkpoint"
    sources = {row["layer"]: row.get("source") for row in report["shapes"]}
    assert sources["conv1"] == "Variable + Variable_6" and sources["fc3"] == "Variable_5 + Variable_11"


def test_without_the_meta_arch_binds_variables_by_name_or_mnist_order(cli, tmp_path: Path) -> None:
    from alexnet_export.sources import read_weights
    from converters.arch import preset

    _, _ = _tfnn_paper(tmp_path / "a" / "model.ckpt", seed=2)
    _mnist(tmp_path / "b" / "model.ckpt", seed=2)
    with_meta = read_weights(tmp_path / "a" / "model.ckpt")
    for folder in ("a", "b"):
        (tmp_path / folder / "model.ckpt.meta").unlink()
    no_arch = cli("inspect", tmp_path / "a" / "model.ckpt")
    assert no_arch.exit_code == 2 and "expected a .meta graph beside the checkpoint or --arch" in no_arch.stderr
    by_name = read_weights(tmp_path / "a" / "model.ckpt", arch=preset("tfnn-paper"))
    assert by_name.bit_equal(with_meta)
    assert dict(by_name.source.origins)["conv2"] == "conv2/weights + conv2/biases"  # type: ignore[union-attr]
    mnist = read_weights(tmp_path / "b", arch=preset("mnist"))
    assert dict(mnist.source.origins)["fc1"] == "Variable_3 + Variable_9"  # type: ignore[union-attr]
    wrong = cli("inspect", tmp_path / "a" / "model.ckpt", "--arch", "keras-v1")
    assert (
        wrong.exit_code == 2
        and "missing variable fc1/weights (or fc1/kernel) and fc1/biases for architecture keras-v1" in wrong.stderr
    ), wrong.stderr


def test_an_arch_that_disagrees_with_the_graph_names_the_first_difference(cli, tmp_path: Path) -> None:
    _tfnn_paper(tmp_path / "model.ckpt", seed=2)
    result = cli("inspect", tmp_path / "model.ckpt", "--arch", "bvlc-alexnet")
    assert result.exit_code == 2
    assert (
        "the checkpoint's graph differs from --arch bvlc-alexnet: input 224x224x3 where bvlc-alexnet takes 227x227x3"
        in result.stderr
    ), result.stderr


def test_a_graph_that_is_not_an_alexnet_chain_names_the_node(cli, tmp_path: Path) -> None:
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 8, 8, 3])
        w = tf1.get_variable("w", [3, 3, 3, 3])
        h = tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME")
        h = tf.nn.tanh(h, name="squash") + x  # a residual connection through an unsupported op
        v = tf1.get_variable("v", [192, 2])
        logits = tf.matmul(tf.reshape(h, [-1, 192]), v) + tf1.get_variable("c", [2])
        tf.nn.softmax(logits)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(session, str(tmp_path / "model.ckpt"))
    result = cli("inspect", tmp_path / "model.ckpt")
    assert result.exit_code == 2, result.output
    assert "node add (AddV2)" in result.stderr or "node squash (Tanh)" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_tf2_checkpoint_reads_with_arch(tmp_path: Path) -> None:
    from alexnet_export.sources import read_weights
    from converters.arch import preset
    from converters.synthetic import synthesize

    source = synthesize(seed=1, width_divisor=8, num_classes=5, arch=preset("mnist"))
    module = tf.Module()
    for name, layer in source.layers.items():
        child = tf.Module(name=name)
        child.kernel, child.bias = tf.Variable(layer.kernel), tf.Variable(layer.bias)
        setattr(module, name, child)
    path = tf.train.Checkpoint(net=module).write(str(tmp_path / "tf2" / "ckpt"))
    read = read_weights(path, arch=preset("mnist"))
    assert read.bit_equal(source)


def test_the_unnamed_variable_order_is_a_fact_of_the_architecture_value() -> None:
    from converters.arch import ArchError, from_json, preset

    data = preset("mnist").to_json()
    assert data["unnamed_variables"] == "kernels-then-biases" and from_json(data) == preset("mnist")
    with pytest.raises(
        ArchError, match=r"architecture.unnamed_variables: expected one of , kernels-then-biases, received 'random'"
    ):
        from_json({**data, "unnamed_variables": "random"})
