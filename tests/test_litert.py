"""LiteRT (.tflite) export, checked by the LiteRT interpreter, and int8 weight quantisation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core.keras_model import build_keras_model
from builder_app.core.project import load_project
from builder_app.exporters.check import check_export
from builder_app.exporters.litert import (
    LiteRTExportError,
    export_litert,
    interpreter_source,
    quantized_copy,
    quantized_layers,
)
from builder_app.exporters.registry import EXPORTERS

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"


def test_litert_is_one_registry_entry_that_takes_int8():
    entry = EXPORTERS["litert"]
    assert entry.flag == "--litert" and entry.suffix == ".tflite" and entry.checkable and entry.quantizable
    assert EXPORTERS["keras"].quantizable
    assert not any(EXPORTERS[k].quantizable for k in ("python", "savedmodel", "onnx", "train-script"))
    assert entry.unavailable() is None  # TensorFlow's converter is here


@pytest.mark.slow
def test_export_litert_check_passes_on_the_digits_example(tmp_path, capsys):
    target = tmp_path / "digits.tflite"
    assert main(["export", str(EXAMPLES / "digits_cnn.kproj"), "--litert", str(target), "--check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"wrote {target}"
    assert out[1].startswith(f"check {target}: output 0: largest difference ") and out[1].endswith("(ok)")
    assert target.read_bytes()[4:8] == b"TFL3"  # a LiteRT flatbuffer


@pytest.mark.slow
def test_quantize_int8_reports_its_difference_against_the_float_model(tmp_path, capsys):
    lite, saved = tmp_path / "digits_int8.tflite", tmp_path / "digits_int8.keras"
    code = main(
        ["export", str(EXAMPLES / "digits_cnn.kproj"), "--litert", str(lite), "--keras", str(saved), "--quantize", "int8", "--check"]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert out[0] == "int8 weights in 1 layer: digit"  # Keras quantises Dense; Conv2D stays float
    checks = [line for line in out if line.startswith("check ")]
    assert len(checks) == 2 and all(line.endswith("against the float model (int8 weights)") for line in checks)
    differences = [float(line.split("largest difference ")[1].split()[0]) for line in checks]
    assert all(0 < d < 0.05 for d in differences)  # changed a little, softmax outputs still close
    loaded = keras.saving.load_model(saved, safe_mode=True)
    assert loaded.get_layer("digit").quantization_mode == "int8"
    assert loaded.get_layer("digit")._kernel.dtype == "int8"


def test_quantize_needs_an_export_that_takes_it(tmp_path, capsys):
    code = main(["export", str(EXAMPLES / "iris_mlp.kproj"), "--python", str(tmp_path / "m.py"), "--quantize", "int8"])
    assert code == 2
    assert capsys.readouterr().err == "builder-app: --quantize int8 applies to --keras or --litert, and none is asked for\n"
    assert not (tmp_path / "m.py").exists()
    assert main(["export", str(EXAMPLES / "iris_mlp.kproj"), "--keras", str(tmp_path / "m.keras"), "--quantize", "int4"]) == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_quantized_copy_leaves_the_float_model_and_names_its_layers():
    graph = load_project(EXAMPLES / "iris_mlp.kproj").graph
    model = build_keras_model(graph)
    before = [np.array(w) for w in model.get_weights()]
    copy = quantized_copy(graph, model)
    assert sorted(quantized_layers(copy)) == sorted(n for n in graph.layers if n.startswith(("hidden", "species")))
    assert quantized_layers(model) == []
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    with pytest.raises(LiteRTExportError, match="unknown quantisation 'int3'"):
        quantized_copy(graph, model, "int3")


@pytest.mark.slow
def test_a_two_input_model_is_fed_by_name_in_the_interpreter(tmp_path):
    graph = load_project(EXAMPLES / "siamese_digits.kproj").graph
    model = build_keras_model(graph)
    export_litert(graph, tmp_path / "siamese.tflite", model=model)
    assert interpreter_source() in ("ai_edge_litert", "tensorflow")
    differences = check_export(graph, "litert", tmp_path / "siamese.tflite", model=model)
    assert len(differences) == 1 and differences[0] < 1e-4


def test_a_litert_file_ends_in_tflite(tmp_path):
    graph = load_project(EXAMPLES / "iris_mlp.kproj").graph
    with pytest.raises(LiteRTExportError, match=r"a LiteRT file ends in \.tflite, not \.bin: model\.bin"):
        export_litert(graph, tmp_path / "model.bin")
    assert not (tmp_path / "model.bin").exists()
