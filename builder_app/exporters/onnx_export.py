"""ONNX export, optional: it needs ``pip install "tf2onnx>=1.17" onnxruntime``.

Keras's own ``model.export(path, format="onnx")`` does the conversion: on the
TensorFlow backend it traces the model as the SavedModel export does and hands
the function to tf2onnx (1.17 or later: 1.16 pins protobuf 3.20, which
TensorFlow 2.20+ refuses). Keras maintains that path, so it is used rather
than ``tf2onnx.convert.from_keras``. Three things are added on top:

* the graph outputs are renamed after the model's output layers (Keras leaves
  ``Identity:0``, ``Identity_1:0``); the inputs already carry the input names;
* tf2onnx only *logs* TensorFlow operations it cannot convert and still writes
  the file. Before anything is written the model is checked for operations
  ONNX lacks (Keras runs grouped convolutions and channels-first 3D ones
  through XLA on CPU, which arrive as ``StatefulPartitionedCall``), then run
  in onnxruntime on random inputs and compared with the Keras model (within
  ``check.TOLERANCE``). A trace can be wrong, not only the conversion: Keras
  3.15's ``TimeDistributed`` over an open time axis maps over the batch
  instead. Failures raise :class:`OnnxExportError`;
* the file is written atomically: a failed export leaves the previous file.

tf2onnx, onnx and onnxruntime are imported only when an export runs, so this
module imports without them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path

from builder_app.core.atomic import write_atomically
from builder_app.core.graph import ModelGraph
from builder_app.core.keras_model import build_keras_model
from builder_app.core.text import one_line
from builder_app.exporters.check import TOLERANCE

#: What to tell a user who lacks the converter or the runtime.
INSTALL_HINT = 'pip install "tf2onnx>=1.17" onnxruntime'


class OnnxUnavailable(RuntimeError):
    """tf2onnx, onnx or onnxruntime is not installed; the message says what to install."""


class OnnxExportError(ValueError):
    """The model cannot be expressed in ONNX; the message names the layer and operation."""


def onnx_available() -> bool:
    """Whether :func:`export_onnx` can run here (its packages import)."""
    try:
        _modules()
    except OnnxUnavailable:
        return False
    return True


def export_onnx(graph: ModelGraph, path: str | os.PathLike[str], *, model=None):
    """Writes an ``.onnx`` file that onnxruntime runs, weights included.

    The batch dimension (and any other dimension the model leaves open) stays
    dynamic; inputs and outputs are named after the model's input and output
    layers.

    Returns:
        The Keras model written (``model`` when given: the caller's build).

    Raises:
        OnnxUnavailable: tf2onnx, onnx or onnxruntime is not installed.
        OnnxExportError: Some layer has no ONNX form, or onnxruntime cannot load
            or run the result, or it computes something else than ``model``.
            Nothing is written.
    """
    onnx, onnxruntime = _modules()
    model = model or build_keras_model(graph)
    with tempfile.TemporaryDirectory(prefix="builder-app-onnx-") as scratch:
        raw = Path(scratch) / "model.onnx"
        with _quiet_converter():
            model.export(str(raw), format="onnx", verbose=False, input_signature=_input_signature(model))
        proto = onnx.load(str(raw))
    _refuse_unsupported_operations(onnx, proto, model)
    _name_outputs(proto, list(getattr(model, "output_names", None) or []))
    data = proto.SerializeToString()
    _verify(onnxruntime, data, model)
    write_atomically(path, lambda handle: handle.write(data))
    return model


def _modules():
    try:
        import onnx
        import onnxruntime
        import tf2onnx  # noqa: F401  (Keras imports it by name during the export)
    except ImportError as exc:
        raise OnnxUnavailable(f"ONNX export needs tf2onnx and onnxruntime: {INSTALL_HINT}") from exc
    return onnx, onnxruntime


def _verify(onnxruntime, data: bytes, model) -> None:
    """Runs the ONNX model in onnxruntime on random inputs and compares with ``model``.

    Open dimensions other than the batch get a length (3) unlike the batch (2),
    so a conversion that mixes them up fails here rather than in the user's hands.
    """
    import keras
    import numpy as np

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # failures are raised below, not logged
    try:
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception classes
        raise OnnxExportError(f"onnxruntime cannot load the exported model: {one_line(exc, 400)}") from exc
    inputs = _probe_inputs(model)
    names = [i.name for i in session.get_inputs()]
    by_name = {t.name: x for t, x in zip(model.inputs, inputs, strict=True)}
    feed = by_name if set(names) == set(by_name) else dict(zip(names, inputs, strict=True))
    try:
        got = session.run(None, feed)
    except Exception as exc:
        detail = one_line(exc, 400)
        node = re.search(r"Name:'([^']*)'", str(exc))
        layer = _layer_of(node.group(1), _layer_names(model)) if node else None
        where = f" at layer {layer!r}" if layer else ""
        raise OnnxExportError(f"onnxruntime cannot run the exported model{where}: {detail}") from exc
    expected = keras.tree.flatten(model(inputs if len(inputs) > 1 else inputs[0], training=False))
    if len(got) != len(expected):
        raise OnnxExportError(f"the ONNX model has {len(got)} outputs, the Keras model {len(expected)}")
    for output, value, reference in zip(session.get_outputs(), got, expected, strict=True):
        reference = np.asarray(reference)
        if value.shape != reference.shape:
            raise OnnxExportError(
                f"output {output.name!r} has shape {value.shape} in ONNX but {reference.shape} in Keras"
            )
        gap = np.abs(value.astype("float64") - reference.astype("float64"))
        gap[np.isnan(gap) & np.isnan(value) & np.isnan(reference)] = 0.0
        largest = float(np.max(gap)) if gap.size else 0.0
        # float32 rounding grows with the values' size (preprocess_input's 0..255 pixels give
        # activations in the hundreds), so the gap is judged against the output's scale.
        finite = np.abs(reference[np.isfinite(reference)]) if reference.size else np.zeros(0)
        scale = max(1.0, float(np.max(finite)) if finite.size else 1.0)
        if not largest <= TOLERANCE * scale:
            raise OnnxExportError(
                f"output {output.name!r} of the ONNX model differs from Keras by {largest:.3g}"
                f" (its values reach {scale:.3g})"
            )


def _probe_inputs(model) -> list:
    import numpy as np

    rng = np.random.default_rng(0)
    batch = []
    for tensor in model.inputs:
        shape = [2 if i == 0 and d is None else 3 if d is None else d for i, d in enumerate(tensor.shape)]
        dtype = str(tensor.dtype)
        if "int" in dtype or dtype == "bool":
            # 0 and 1: valid ids for any vocabulary, and 0 exercises masks.
            batch.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            batch.append(rng.normal(size=shape).astype(dtype))
    return batch


def _input_signature(model) -> list:
    """The model's call signature, given explicitly.

    Without it ``export(format="onnx")`` refuses a functional model that was
    never called. A model of one input takes the tensor, else the list.
    """
    inputs = list(model.inputs)
    return [inputs[0]] if len(inputs) == 1 else [inputs]


@contextlib.contextmanager
def _quiet_converter():
    """Silences tf2onnx's log and Keras's numpy-2 shim warning during one export.

    Operations tf2onnx cannot convert are reported by this module instead.
    """
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _refuse_unsupported_operations(onnx, proto, model) -> None:
    missing = [
        node
        for node in proto.graph.node
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)
    ]
    if not missing:
        return
    names = _layer_names(model)
    described = []
    for node in missing:
        layer = _layer_of(node.name, names)
        item = f"{layer!r} ({node.op_type})" if layer else f"{node.name} ({node.op_type})"
        if item not in described:
            described.append(item)
    hint = ""
    if any(node.op_type == "StatefulPartitionedCall" for node in missing):
        hint = "; Keras runs grouped and channels-first 3D convolutions through XLA, which tf2onnx cannot convert"
    raise OnnxExportError(f"ONNX has no form for {', '.join(described)}{hint}")


def _layer_names(model) -> set[str]:
    names = set()
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        names.add(layer.name)
        stack.extend(getattr(layer, "layers", None) or [])
    return names


def _layer_of(node_name: str, names: set[str]) -> str | None:
    """The layer an ONNX node came from, read off TensorFlow's name scopes.

    Keras scopes each call as ``<model>_<n>/<layer>_<n>/...``; the deepest
    scope naming a layer wins.
    """
    found = None
    for scope in node_name.split("/")[:-1]:
        if scope in names:
            found = scope
        elif (base := re.sub(r"_\d+$", "", scope)) in names:
            found = base
    return found


def _name_outputs(proto, wanted: list[str]) -> None:
    """Renames the graph outputs to ``wanted`` (the Keras output names) where that is safe.

    A renamed tensor is renamed wherever it is read, loop and branch bodies included.
    """
    outputs = list(proto.graph.output)
    if len(wanted) != len(outputs) or len(set(wanted)) != len(wanted):
        return
    graphs = list(_graphs(proto.graph))
    produced = {name for graph in graphs for node in graph.node for name in node.output}
    taken = set(produced)
    for graph in graphs:
        taken |= {name for node in graph.node for name in node.input}
        taken |= {value.name for value in (*graph.input, *graph.output, *graph.value_info)}
        taken |= {init.name for init in graph.initializer}
    renames = {}
    for output, new in zip(outputs, wanted, strict=True):
        # An input passed straight through to an output keeps its name.
        if new and new not in taken and output.name in produced and output.name not in renames:
            renames[output.name] = new
    for graph in graphs:
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name in renames:
                    node.input[i] = renames[name]
            for i, name in enumerate(node.output):
                if name in renames:
                    node.output[i] = renames[name]
        for value in (*graph.input, *graph.output, *graph.value_info):
            if value.name in renames:
                value.name = renames[value.name]


def _graphs(graph):
    """``graph`` and every graph nested in its nodes (Loop, Scan and If bodies)."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _graphs(attribute.g)
            for inner in attribute.graphs:
                yield from _graphs(inner)
