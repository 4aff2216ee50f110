"""TensorFlow's generated TFLite flatbuffer code, used without importing TensorFlow.

Placement packs the model with the object API of ``tensorflow/lite/python/schema_py_generated.py``,
the code the converter's own last pass packs with, so the bytes are the converter's. That file and
``conversion_metadata_schema_py_generated.py`` import only ``flatbuffers``; importing them as
``tensorflow.lite.python...`` would first run TensorFlow's ``__init__`` (~2 s), so when TensorFlow is
not imported yet they are loaded from their files in the installed package instead. A TFLite export
whose small conversions are cached then never imports TensorFlow.

:func:`model_hash` is TensorFlow's ``tensorflow.lite.python.util.get_model_hash`` (the structure hash
the converter writes into ``CONVERSION_METADATA``), written for Python integers; a test checks it
against TensorFlow's on real models.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

CONVERSION_METADATA = b"CONVERSION_METADATA"
_MASK = 2**64 - 1
_HASH_CONSTANT = 0x9E3779B97F4A7800


@cache
def _generated(name: str) -> ModuleType:
    imported = sys.modules.get(f"tensorflow.lite.python.{name}")
    if imported is not None:
        return imported
    spec = importlib.util.find_spec("tensorflow")  # finds the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("TensorFlow is not installed: its TFLite schema code is needed")
    path = Path(next(iter(spec.submodule_search_locations))) / "lite" / "python" / f"{name}.py"
    loaded = importlib.util.spec_from_file_location(f"alexnet_export._tensorflow_{name}", path)
    if loaded is None or loaded.loader is None:
        raise ImportError(f"{path}: not loadable")
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def schema() -> Any:
    """TensorFlow's ``schema_py_generated`` (the TFLite flatbuffer schema, object API included)."""
    return _generated("schema_py_generated")


def metadata_schema() -> Any:
    """TensorFlow's ``conversion_metadata_schema_py_generated``."""
    return _generated("conversion_metadata_schema_py_generated")


def _mix(value: int, into: int) -> int:
    """One step of TensorFlow's uint64 hash (``update_hash_with_primitive_value``), wrapping as uint64 does."""
    return (into ^ ((value & _MASK) + _HASH_CONSTANT + (into << 10) + (into >> 4))) & _MASK


def _mix_all(values: Any, into: int) -> int:
    for value in values if values is not None else ():
        into = _mix(int(value), into)
    return into


def model_hash(model: Any) -> int:
    """The structure hash of a ``ModelT`` exactly as ``tensorflow.lite.python.util.get_model_hash`` computes it.

    Operator counts and their input/output indices, tensor counts, each tensor's buffer length and
    shape, and the subgraph input/output counts; nothing of the weights' values.
    """
    value = 0
    for graph in model.subgraphs:
        if graph.operators is not None:
            value = _mix(len(graph.operators), value)
            for op in graph.operators:
                value = _mix_all(op.inputs, value)
                value = _mix_all(op.outputs, value)
        if graph.tensors is not None:
            value = _mix(len(graph.tensors), value)
            for tensor in graph.tensors:
                if tensor.buffer is not None:
                    data = model.buffers[tensor.buffer].data
                    if data is not None:
                        value = _mix(len(data), value)
                value = _mix_all(tensor.shape, value)
        if graph.inputs is not None:
            value = _mix(len(graph.inputs), value)
        if graph.outputs is not None:
            value = _mix(len(graph.outputs), value)
    return value


def refresh_conversion_metadata(model: Any) -> None:
    """Recompute the structure hash in ``model``'s CONVERSION_METADATA, as the converter writes it for this model.

    The metadata table is unpacked, its ``environment.modelHash`` replaced and packed again into its
    buffer (what TensorFlow's ``populate_conversion_metadata`` does for an existing entry).
    """
    import flatbuffers
    import numpy as np

    for meta in model.metadata or []:
        if meta.name == CONVERSION_METADATA:
            data = bytearray(np.asarray(model.buffers[meta.buffer].data).tobytes())
            content = metadata_schema().ConversionMetadataT.InitFromPackedBuf(data, 0)
            content.environment.modelHash = model_hash(model)
            builder = flatbuffers.Builder(0)
            builder.Finish(content.Pack(builder))
            buffer = schema().BufferT()
            buffer.data = builder.Output()
            model.buffers[meta.buffer] = buffer
