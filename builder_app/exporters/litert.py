"""LiteRT (``.tflite``) export and int8 weight quantisation, both through Keras's own API.

``model.export(path, format="litert")`` converts the model on the TensorFlow
backend (Keras traces it into a SavedModel, TensorFlow's converter makes the
flatbuffer); the app's process is on TensorFlow, so it runs here. The file is
written beside the target and renamed, as every export is.

``--quantize int8`` is ``model.quantize("int8")``, weights only (an
``Int8QuantizationConfig`` without an activation quantiser): the kernels of the
layers Keras quantises (Dense, EinsumDense, Embedding, ...) become int8 with a float
scale per output channel, which makes them four times smaller and the outputs a
little different. The quantised model is a copy: the project's float weights stay as
they are, and ``export --check`` compares the export with the float model,
reporting the difference (:data:`QUANTIZE_MODES`).

The ``.tflite`` file is checked by the LiteRT interpreter (``ai-edge-litert``,
the ``litert`` extra) where installed, else by TensorFlow's ``tf.lite.Interpreter``.
No Qt here.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

from builder_app.core.atomic import write_atomically
from builder_app.core.graph import ModelGraph
from builder_app.core.keras_model import build_keras_model

#: What ``--quantize`` accepts: Keras's quantisation modes the app offers.
QUANTIZE_MODES = ("int8",)
#: Where the LiteRT interpreter comes from.
INSTALL_HINT = 'pip install "builder-app[litert]"'


class LiteRTExportError(ValueError):
    """The model could not be converted to LiteRT, or quantised; the message says why."""


def litert_unavailable() -> str | None:
    """Why a LiteRT export cannot be written here (one sentence), or None when it can."""
    if importlib.util.find_spec("tensorflow") is None:
        return f"LiteRT export needs TensorFlow's converter: pip install tensorflow ({INSTALL_HINT} for the interpreter)"
    return None


def quantized_copy(graph: ModelGraph, model, mode: str = "int8"):
    """A copy of ``model`` (built from ``graph``, the same weights) quantised with ``model.quantize(mode)``.

    Raises:
        LiteRTExportError: An unknown mode, or a model Keras cannot quantise (the message says which).
    """
    if mode not in QUANTIZE_MODES:
        raise LiteRTExportError(f"unknown quantisation {mode!r}: one of {', '.join(QUANTIZE_MODES)}")
    import keras

    copy = build_keras_model(graph)
    copy.set_weights(model.get_weights())
    # Weights only: the activations stay float, so that LiteRT's float kernels run the
    # layers (Keras's default int8 also quantises each layer's inputs, which LiteRT refuses).
    config = keras.quantizers.Int8QuantizationConfig(activation_quantizer=None)
    try:
        with warnings.catch_warnings():  # "Layer Conv2D does not have a `quantize` method": it stays float
            warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
            copy.quantize(mode, config=config)
    except (ValueError, NotImplementedError, TypeError) as exc:
        raise LiteRTExportError(f"Keras cannot quantise this model to {mode}: {exc}") from None
    if not quantized_layers(copy):
        raise LiteRTExportError(
            f"no layer of this model has weights Keras quantises to {mode} (Dense, EinsumDense, Embedding)"
        )
    return copy


def quantized_layers(model) -> list[str]:
    """The names of the layers of ``model`` (sub-models included) whose weights are quantised."""
    from builder_app.core.keras_compat import sublayers

    return [layer.name for layer in sublayers(model)[1:] if getattr(layer, "quantization_mode", None)]


def export_litert(graph: ModelGraph, path: str | os.PathLike[str], *, model=None):
    """Writes a LiteRT flatbuffer (``.tflite``) of the model; returns the model written.

    Raises:
        LiteRTExportError: The converter refused the model (an op LiteRT lacks, a wrong suffix).
        OSError: The file cannot be written.
    """
    from builder_app.core.quiet import native_stderr_silenced

    model = model or build_keras_model(graph)
    target = Path(path)
    if target.suffix.lower() != ".tflite":
        raise LiteRTExportError(f"a LiteRT file ends in .tflite, not {target.suffix or 'nothing'}: {target.name}")
    with tempfile.TemporaryDirectory(prefix="builder-app-litert-") as scratch:
        staged = Path(scratch) / "model.tflite"
        try:
            with native_stderr_silenced():  # the converter's C++ logging
                model.export(str(staged), format="litert", verbose=False)
        except Exception as exc:  # noqa: BLE001 - the converter's ConverterError and its kin: one line
            text = " ".join(str(exc).split())[:300]
            raise LiteRTExportError(f"LiteRT conversion failed: {type(exc).__name__}: {text}") from None
        data = staged.read_bytes()
    write_atomically(target, lambda handle: handle.write(data))
    return model


def interpreter_source() -> str:
    """Which interpreter checks a ``.tflite`` file here: ``ai_edge_litert`` or ``tensorflow``."""
    return "ai_edge_litert" if importlib.util.find_spec("ai_edge_litert") is not None else "tensorflow"
