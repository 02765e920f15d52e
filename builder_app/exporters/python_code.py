"""Graph -> Python source: the functional Keras code a careful engineer would write.

The source defines ``build_model() -> keras.Model``, keeps every layer name of the
graph, imports only ``keras`` (and ``from keras import layers``) and prints the
model's summary when run as a script. It must never import anything from
``builder_app``: it is meant to live on without this app. Each layer call is one
statement; a shared layer is made once and called several times; a sub-model gets
its own ``build_<name>()`` function.

It reads like the keras.io guides: ``layers.Conv2D(32, 3, activation="relu")``, the
leading arguments whose meaning is plain written positionally (a uniform kernel
size or stride as one number), keywords where a bare value would hide what it is
(``layers.Dot(axes=1)``). The text is laid out by
:mod:`builder_app.exporters.code_printer` exactly as ``ruff format`` would lay it
out, so it passes ``ruff format --check`` and ``ruff check`` with no formatter run
at export time.

Only arguments that differ from Keras's defaults are written. Defaults come from
the catalog, and every shortened config is checked by building the layer from it
and comparing ``get_config()`` with the graph's, so leaving an argument out never
changes the model. ``keras.ops`` nodes are checked the same way: the rendered call
is run on symbolic tensors and must record the very operation the graph holds.

Keras is imported lazily (inside functions), as everywhere outside ``ui``.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import json
import keyword
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from builder_app.core import catalog, custom_code, keras_compat
from builder_app.core.calls import CONSTANT_KINDS, call_arguments, constant_problem, marker_refusal
from builder_app.core.graph import INPUT_CLASS, Layer, ModelGraph, PortRef, plain_layers, snake_case
from builder_app.core.keras_build import is_operation, make_keras_layer
from builder_app.core.messages import problems_message
from builder_app.core.shapes import ShapeEngine
from builder_app.core.text import json_plain
from builder_app.exporters import code_printer
from builder_app.exporters.code_printer import Call, Index, Kw, Pair, Seq, flat, literal, string

#: Lines are wrapped to stay within this width (``ruff format``'s, in pyproject.toml).
LINE_LENGTH = code_printer.LINE_LENGTH
_INDENT = code_printer.INDENT

# Names of the extra outputs of layers that return several tensors (port 0 keeps
# the layer's own variable name).
_OUTPUT_SUFFIXES: dict[Any, tuple[str, ...]] = {
    "LSTM": ("", "state_h", "state_c"),
    "GRU": ("", "state"),
    "SimpleRNN": ("", "state"),
    "MultiHeadAttention": ("", "scores"),
    "GroupQueryAttention": ("", "scores"),
    ("Bidirectional", 3): ("", "forward_state", "backward_state"),
    ("Bidirectional", 5): ("", "forward_h", "forward_c", "backward_h", "backward_c"),
}
# Layers whose several outputs come back as a flat list or tuple, so they can be
# unpacked directly; anything else goes through keras.tree.flatten first.
_FLAT_OUTPUTS = {
    "LSTM", "GRU", "SimpleRNN", "Bidirectional", "MultiHeadAttention", "GroupQueryAttention",
}
_NESTED_OBJECT_MODULES = {
    "keras.initializers": "initializers",
    "keras.regularizers": "regularizers",
    "keras.constraints": "constraints",
}
# The namespace of an object serialized without its module, by the argument's name.
_NAMESPACE_BY_SUFFIX = (
    ("initializer", "initializers"),
    ("regularizer", "regularizers"),
    ("constraint", "constraints"),
)
# Config keys holding a nested layer (Bidirectional, TimeDistributed, RNN).
_LAYER_ARGS = {"layer", "backward_layer", "cell"}
# Leading required arguments that a bare value would not explain: always keywords
# (``layers.Dot(axes=1)``, ``layers.MultiHeadAttention(num_heads=2, key_dim=16)``).
_KEYWORD_ARGUMENTS = {
    "Dot": {"axes"},
    "EinsumDense": {"output_shape"},
    "MultiHeadAttention": {"num_heads", "key_dim"},
    "GroupQueryAttention": {"head_dim", "num_query_heads", "num_key_value_heads"},
    "Hashing": {"num_bins"},
}
# Leading arguments with a default that the guides still write first when given:
# ``layers.MaxPooling2D(3)``, ``layers.UpSampling2D(2)``.
_POSITIONAL_WHEN_GIVEN = {"pool_size", "size"}
# Single-strength regularizers read best as ``L2(0.01)``, default or not, and a
# constant as ``Constant(np.array([...]))``, as the keras.io examples write them.
_POSITIONAL_STRENGTH = {"L1", "L2", "Constant"}
# Public keras.ops namespaces for the private modules operations live in.
_OPS_NAMESPACES = keras_compat.OPERATION_MODULES


class CodegenError(ValueError):
    """The graph cannot be written as Python; the message names the layer."""


def python_source(
    graph: ModelGraph,
    *,
    docstring: str | None = None,
    imports: Sequence[str] = (),
    after: Sequence[str] = (),
    main: str = 'if __name__ == "__main__":\n    build_model().summary()',
) -> str:
    """Functional Keras code that builds the model the graph describes.

    Args:
        graph: A valid graph (see :class:`ShapeEngine`); invalid ones are refused.
        docstring: The module's docstring, without quotes (default: what it builds).
        imports: Import lines besides Keras's (``import numpy as np``); they are
            sorted in with those the code needs, as ruff's isort rules want.
        after: Top-level blocks written after ``build_model`` (a training
            script's functions, say), already laid out.
        main: The ``if __name__ == "__main__":`` block.

    Returns:
        The source of a module defining ``build_model() -> keras.Model``.

    Raises:
        CodegenError: The graph has errors, or holds something Python cannot
            express faithfully (the message names the layer).
    """
    results = _checked_results(graph)
    writer = _ModuleWriter(LINE_LENGTH)
    built = writer.function("build_model", graph, graph.name, results)
    if docstring is None:
        name = f' "{graph.name}"' if _plain_text(graph.name) else ""
        docstring = f"Builds the Keras model{name} with the functional API."
    body = [*writer.functions, built]
    uses_layers = any(
        isinstance(n, ast.Name) and n.id == "layers" for n in ast.walk(ast.parse("\n\n".join(body)))
    )
    uses_numpy = any(  # a NumPy constant in a layer's arguments
        isinstance(n, ast.Name) and n.id == "np" for n in ast.walk(ast.parse("\n\n".join(body)))
    )
    needed = [
        "import keras",
        *(["from keras import layers"] if uses_layers else []),
        *(["import numpy as np"] if uses_numpy else []),
    ]
    shipped, sources = _outside_catalog(graph)
    needed += shipped
    return code_printer.module(
        f'"""{docstring}"""', sort_imports([*needed, *imports]), [*sources, *body, *after, main]
    )


def _outside_catalog(graph: ModelGraph) -> tuple[list[str], list[str]]:
    """Import lines for Keras's own layers outside keras.layers, and the user's code, verbatim.

    A user's class is written as its file has it, then registered with
    ``keras.saving.register_keras_serializable`` unless the file does so itself, so a
    ``.keras`` file the model saves loads wherever the classes are defined.
    """
    imports: set[str] = set()
    for layer in plain_layers(graph):
        if layer.class_name.startswith("keras.") and custom_code.is_outside_catalog(layer.class_name):
            cls = custom_code.layer_class(layer.class_name)
            if cls is not None:
                imports.add(f"from {cls.__module__} import {cls.__name__}")
    files = {file.name: file for file in custom_code.files_for(graph)}  # layers, regularizers, ...
    objects = [obj for _, obj in custom_code.active_objects().values()]
    sources = []
    for name in sorted(files):
        file = files[name]
        registered = custom_code.registered_classes(file)
        block = [f"# ---- custom code from {name} (the project's trusted code) ----", file.text.strip("\n")]
        block += [
            f'keras.saving.register_keras_serializable(package="{file.module}")({cls})'
            for cls in custom_code.class_names(file)
            if cls not in registered and cls in custom_code.active_classes()
        ]
        block += [
            f'keras.saving.register_keras_serializable(package="{file.module}")({obj.__name__})'
            for obj in objects
            if obj.__module__ == file.module and obj.__name__ not in registered
        ]
        sources.append("\n".join(block))
    return sorted(imports), sources


def sort_imports(lines: Sequence[str]) -> list[str]:
    """Import lines as ruff's isort rules order them: standard library, then the rest.

    Within a group ``import x`` lines come first, then ``from x import y``, each
    sorted by module; a blank line separates the groups.
    """
    groups: dict[bool, list[str]] = {True: [], False: []}
    for line in dict.fromkeys(line.strip() for line in lines if line.strip()):
        module = line.split()[1].split(".")[0]
        groups[module in sys.stdlib_module_names].append(line)

    def key(line: str) -> tuple[bool, str, str]:
        return (line.startswith("from "), line.split()[1].lower(), line)

    blocks = [sorted(groups[True], key=key), sorted(groups[False], key=key)]
    return [line for block in (b for b in blocks if b) for line in [*block, ""]][:-1]


def _plain_text(text: str) -> bool:
    """Whether ``text`` can go into a docstring as it is (no quotes, backslashes, controls)."""
    return text.isprintable() and not any(c in text for c in "\"\\")


# --------------------------------------------------------------------------- #
# Checking the graph
# --------------------------------------------------------------------------- #


def _checked_results(graph: ModelGraph):
    """Shape results of a valid graph; refuses invalid ones as the model builder does."""
    engine = ShapeEngine(graph)
    try:
        problems = engine.errors()
        results = engine.results()
    finally:
        engine.close()
    if problems:
        raise CodegenError(problems_message(graph, problems))
    return results


# --------------------------------------------------------------------------- #
# Values
# --------------------------------------------------------------------------- #


def _dtype_name(value: Any) -> Any:
    """A dtype policy as its name: ``{"class_name": "DTypePolicy", ...}`` -> ``"float32"``."""
    if isinstance(value, dict) and isinstance(value.get("config"), dict):
        return value["config"].get("name", value)
    return value


def _same(a: Any, b: Any, key: str) -> bool:
    if key == "dtype" or key.endswith("_dtype"):
        return _dtype_name(a) == _dtype_name(b)
    # Any other object as its repr, which compares unequal to any config value: the key is written.
    # Keras's saving marks objects with a ``shared_object_id``, which says nothing of their value.
    return _unshared(json_plain(a, other=repr)) == _unshared(json_plain(b, other=repr))


def _unshared(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


class _ValueWriter:
    """Renders config values: objects as constructors, policies as names, tuples as tuples."""

    def __init__(self, where: str):
        self.where = where

    def value(self, key: str, value: Any, kind: str | None) -> Any:
        if key == "dtype" or key.endswith("_dtype") or kind == catalog.DTYPE:
            name = _dtype_name(value)
            if isinstance(name, str | type(None)):
                return literal(name)
        if isinstance(value, dict) and "class_name" in value and "config" in value:
            return self.serialized(key, value)
        if isinstance(value, list):
            as_tuple = kind in (catalog.INT_TUPLE, catalog.SHAPE)
            return literal(value, as_tuple=as_tuple) if _is_plain(value) else Seq(
                "[", [self.value(key, v, None) for v in value], "]"
            )
        if isinstance(value, dict):
            return Seq(
                "{", [Pair(string(str(k)), self.value(k, v, None)) for k, v in value.items()], "}"
            )
        try:
            return literal(value)
        except TypeError:
            raise CodegenError(f"{self.where}: cannot write the value of '{key}'") from None

    def serialized(self, key: str, value: dict) -> Any:
        module = value.get("module")
        class_name = value.get("class_name")
        config = value.get("config") or {}
        if class_name in CONSTANT_KINDS and module is None:
            return _argument_constant(value, f"{self.where}: '{key}'")
        found = custom_code.custom_object(value)
        if found is not None:  # the project's trusted code defines it (written above the model)
            return self.custom_object(found[1], config, key)
        if module in _NESTED_OBJECT_MODULES:
            return self.keras_object(_NESTED_OBJECT_MODULES[module], class_name, config, key)
        if module is None:
            # Written without its module (by hand, in a project): Keras resolves the
            # class with the getter of the argument, which its name says.
            for suffix, namespace in _NAMESPACE_BY_SUFFIX:
                if key.endswith(suffix):
                    return self.keras_object(namespace, class_name, config, key)
        if (isinstance(module, str) and module.startswith("keras.layers")) or key in _LAYER_ARGS:
            return _layer_constructor(class_name, config, config.get("name"), self.where)
        if key == "dtype" or key.endswith("_dtype"):
            return literal(_dtype_name(value))
        if str(class_name).startswith("__"):
            raise CodegenError(f"{self.where}: '{key}' {marker_refusal(class_name)}")
        raise CodegenError(
            f"{self.where}: '{key}' holds a {class_name} object, which has no Python form here"
        )

    def custom_object(self, obj: Any, config: Any, key: str) -> Any:
        """A regularizer, initializer, constraint (``MyReg(0.01)``) or function of the user's code."""
        if not inspect.isclass(obj):
            return obj.__name__
        config = config if isinstance(config, dict) else {}
        params = {p.name: p for p in _signature(obj)}
        if any(k not in params for k in config):  # get_config does not mirror __init__
            return Call(f"{obj.__name__}.from_config", [self.value(key, config, None)])
        args: list[Any] = []
        for name, written in config.items():
            param = params[name]
            if param.default is inspect.Parameter.empty or not _same(written, param.default, name):
                args.append(Kw(name, self.value(name, written, None)))
        return Call(obj.__name__, args)

    def keras_object(self, namespace: str, class_name: Any, config: Mapping, key: str) -> Any:
        import keras

        cls = getattr(getattr(keras, namespace), str(class_name), None)
        if not inspect.isclass(cls):
            raise CodegenError(f"{self.where}: '{key}' names an unknown {namespace[:-1]} {class_name}")
        params = [p for p in _signature(cls) if p.name in config]
        args: list[Any] = []
        for i, param in enumerate(params):
            written = config[param.name]
            if class_name in _POSITIONAL_STRENGTH and i == 0:
                args.append(self.value(param.name, written, None))
            elif param.default is inspect.Parameter.empty or not _same(
                written, param.default, param.name
            ):
                args.append(Kw(param.name, self.value(param.name, written, _object_kind(param.name))))
        unknown = [k for k in config if k not in {p.name for p in params} and config[k] is not None]
        if unknown:
            raise CodegenError(
                f"{self.where}: {class_name} in '{key}' has arguments Keras does not take: {unknown}"
            )
        return Call(f"keras.{namespace}.{class_name}", args)


def _object_kind(name: str) -> str | None:
    return catalog.INT_TUPLE if name in ("input_axes", "output_axes") else None


def _is_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


def _signature(cls: type) -> list[inspect.Parameter]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


# --------------------------------------------------------------------------- #
# Layer constructors
# --------------------------------------------------------------------------- #


def _layer_class(class_name: str, where: str) -> type:
    import keras

    cls = getattr(keras.layers, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, keras.layers.Layer)):
        cls = custom_code.layer_class(class_name)
        if cls is None:
            raise CodegenError(f"{where}: {class_name} is not a keras.layers class")
    return cls


def _callee(class_name: str, cls: type) -> str:
    """``layers.Dense``, or the bare name of a class the module imports or defines."""
    import keras

    if getattr(keras.layers, class_name, None) is cls:
        return f"layers.{class_name}"
    return cls.__name__


def _reference_defaults(class_name: str, cls: type, config: Mapping) -> dict[str, Any]:
    """Default config values: the catalog's, else a fresh instance's (RNN cells)."""
    try:
        spec = catalog.layer_spec(class_name)
    except KeyError:
        spec = None
    if spec is not None:
        return {p.name: p.default for p in spec.params if not p.required}
    required = {p.name: config[p.name] for p in _signature(cls) if p.default is p.empty and p.name in config}
    if not all(_is_plain(v) for v in required.values()):
        return {}
    try:
        instance = cls(**required)
    except Exception:  # noqa: BLE001 - without defaults every argument is written
        return {}
    return {k: v for k, v in json_plain(instance.get_config(), other=repr).items() if k not in required}


def _kept_keys(class_name: str, cls: type, config: Mapping, name: str, top: bool) -> list[str]:
    """The config keys to write: required ones, and those differing from the defaults.

    The shortened config is then built and its ``get_config()`` compared with the
    full one; any key Keras would fill in differently is written too (a default can
    depend on other arguments).
    """
    signature = _signature(cls)
    required = {p.name for p in signature if p.default is p.empty}
    defaults = _reference_defaults(class_name, cls, config)
    kept = [
        k for k in config
        if k in required or k not in defaults or not _same(config[k], defaults[k], k)
    ]
    for _ in range(4):
        short = {k: config[k] for k in kept}
        try:
            if top:
                instance = _made_as_written(Layer(name, class_name, short), cls)
            else:
                instance = cls.from_config({**short, "name": name})
            rebuilt = json_plain(instance.get_config(), other=repr)
        except Exception:  # noqa: BLE001 - LayerError or Keras's refusal: write everything
            return list(config)
        missing = [k for k in config if k not in kept and not _same(rebuilt.get(k), config[k], k)]
        if not missing:
            break
        kept += missing
    else:
        return list(config)
    return kept


def _made_as_written(layer: Layer, cls: type) -> Any:
    """The layer the shortened arguments make: as the app makes it, else as the code calls it.

    ``TextVectorization.from_config`` needs keys its constructor defaults
    (``standardize``...), so the code's own call, ``cls(**arguments)``, is asked then.
    """
    import warnings

    from builder_app.core.keras_build import LayerError

    try:
        return make_keras_layer(layer)
    except LayerError:
        if "from_config" not in vars(cls):
            raise
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(**layer.config, name=layer.name)


def _layer_constructor(class_name: Any, config: Any, name: Any, where: str, top: bool = False) -> Call:
    """``layers.Class(leading..., non_default=..., name="...")``, as the keras.io guides write it."""
    if not isinstance(class_name, str) or not isinstance(config, dict):
        raise CodegenError(f"{where}: a nested layer without class or config")
    where = where if top else f"{where} ({class_name} {name!r})"
    cls = _layer_class(class_name, where)
    config = {k: v for k, v in custom_code.keras_config(config).items() if k != "name"}
    layer_name = name if isinstance(name, str) else class_name
    kept = _kept_keys(class_name, cls, config, layer_name, top)
    try:
        kinds = {p.name: p.kind for p in catalog.layer_spec(class_name).params}
    except KeyError:
        kinds = {}
    written = _short_tuples(cls, config, kept, kinds, layer_name)
    signature = _signature(cls)
    order = [p.name for p in signature] + [k for k in config if k not in {p.name for p in signature}]
    hidden = _KEYWORD_ARGUMENTS.get(class_name, ())
    writer = _ValueWriter(where)
    args: list[Any] = []
    positional = True
    for key in sorted(written, key=lambda k: order.index(k) if k in order else len(order)):
        param = next((p for p in signature if p.name == key), None)
        value = writer.value(key, written[key], kinds.get(key))
        positional = (
            positional
            and param is not None
            and param.kind is param.POSITIONAL_OR_KEYWORD
            and order.index(key) == len(args)
            and (
                (param.default is param.empty and key not in hidden)
                or key in _POSITIONAL_WHEN_GIVEN
            )
        )
        args.append(value if positional else Kw(key, value))
    if isinstance(name, str):
        args.append(Kw("name", string(name)))
    return Call(_callee(class_name, cls), args)


def _short_tuples(cls: type, config: Mapping, kept: Sequence[str], kinds: Mapping, name: str) -> dict[str, Any]:
    """The kept arguments, a uniform tuple of ints as one int (``kernel_size=3``) where Keras reads it so.

    The layer is built from the shortened arguments and must give back the very config.
    """
    written = {k: config[k] for k in kept}
    uniform = [
        k
        for k in kept
        if kinds.get(k) == catalog.INT_TUPLE
        and isinstance(config[k], list)
        and config[k]
        and all(type(v) is int and v == config[k][0] for v in config[k])
    ]
    if not uniform:
        return written
    short = {**written, **{k: config[k][0] for k in uniform}}
    try:
        rebuilt = json_plain(cls.from_config({**short, "name": name}).get_config(), other=repr)
    except Exception:  # noqa: BLE001 - Keras wants the tuple: write it
        return written
    return short if all(_same(rebuilt.get(k), v, k) for k, v in config.items()) else written


def _input_constructor(layer: Layer) -> Call:
    config = layer.config
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None:
        shape = [config.get("batch_size"), *config.get("shape", [])]
    args: list[Any] = [Kw("shape", literal(list(shape[1:]), as_tuple=True))]
    if shape and shape[0] is not None:
        args.append(Kw("batch_size", literal(shape[0])))
    dtype = _dtype_name(config.get("dtype")) or "float32"
    if dtype != "float32":
        args.append(Kw("dtype", literal(dtype)))
    for flag in ("sparse", "ragged", "optional"):
        if config.get(flag):
            args.append(Kw(flag, "True"))
    args.append(Kw("name", literal(layer.name)))
    return Call("keras.Input", args)


# --------------------------------------------------------------------------- #
# Names
# --------------------------------------------------------------------------- #


class _Names:
    """Unique Python identifiers derived from layer names."""

    def __init__(self, reserved: set[str] = frozenset(), reserved_prefix: str | None = None):
        # Builtins and module-level names are not shadowed: ``max_``, ``keras_``, ``layers_``.
        self.reserved = set(reserved) | set(dir(builtins)) | {"keras", "layers", "np"}
        self.reserved_prefix = reserved_prefix
        self.taken: set[str] = set()

    def make(self, name: str) -> str:
        base = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower() or "tensor"
        if base[0].isdigit():
            base = f"layer_{base}"
        if (
            keyword.iskeyword(base)
            or keyword.issoftkeyword(base)
            or base in self.reserved
            or (self.reserved_prefix and base.startswith(self.reserved_prefix))
        ):
            base += "_"
        candidate, i = base, 2
        while candidate in self.taken:
            candidate, i = f"{base}_{i}", i + 1
        self.taken.add(candidate)
        return candidate


# --------------------------------------------------------------------------- #
# Functions
# --------------------------------------------------------------------------- #


class _ModuleWriter:
    """Collects ``build_<submodel>()`` functions, inner ones first."""

    def __init__(self, width: int):
        self.width = width
        self.functions: list[str] = []
        self.function_names = _Names({"build_model"})

    def function(self, fn_name: str, graph: ModelGraph, model_name: str, results) -> str:
        return _FunctionWriter(self, graph, results).write(fn_name, model_name)


class _FunctionWriter:
    def __init__(self, module: _ModuleWriter, graph: ModelGraph, results):
        self.module = module
        self.graph = graph
        self.results = results
        self.counts = {n: len(r.outputs or [None]) for n, r in results.items()}
        # Locals must not shadow the module's functions, even those named later.
        self.names = _Names(reserved_prefix="build_")
        self.lines: list[str] = []
        self.tensors: dict[PortRef, str] = {}
        self.objects: dict[str, str] = {}

    def write(self, fn_name: str, model_name: str) -> str:
        graph = self.graph
        # Tensors nothing reads get no name (ruff: F841, RUF059): ``_`` or no assignment.
        self.used = {PortRef(e.src, e.src_port) for e in graph.edges()} | set(graph.model_outputs(self.counts))
        for node_id in graph.topological_order():
            layer = graph.layer_of(node_id)
            where = f"layer '{layer.name}'"
            if layer.class_name == INPUT_CLASS:
                var = self.names.make(layer.name)
                self.lines += self.statement(var, _input_constructor(layer))
                self.tensors[PortRef(node_id, 0)] = var
            elif is_operation(layer.class_name):
                self.operation(node_id, layer, where)
            else:
                self.layer_call(node_id, layer, where)
        from builder_app.core.io_structure import structured

        inputs = [self.tensors[PortRef(n, 0)] for n in graph.model_inputs()]
        outputs = [self.tensors[ref] for ref in graph.model_outputs(self.counts)]
        # As the model was made: a dict of inputs stays a dict, a list of one a list.
        model = Call(
            "keras.Model",
            [
                Kw("inputs", _grouped(structured(graph, "inputs", inputs, len(graph.explicit_inputs())))),
                Kw("outputs", _grouped(structured(graph, "outputs", outputs, len(graph.explicit_outputs())))),
                Kw("name", literal(model_name)),
            ],
        )
        self.lines += self.statement("return", model)
        name = f' "{model_name}"' if _plain_text(model_name) else ""
        doc = f'    """Builds the functional model{name}."""'
        return "\n".join([f"def {fn_name}() -> keras.Model:", doc, *self.lines])

    # ---------------------------------------------------------------- layers
    def layer_call(self, node_id: str, layer: Layer, where: str) -> None:
        from builder_app.exporters.io_structure import with_state

        layer = with_state(layer, where)
        graph = self.graph
        calls = graph.nodes_of_layer(layer.name)
        obj = self.objects.get(layer.name)
        if layer.submodel is not None:
            if obj is None:
                from builder_app.exporters.backbones import application_call

                obj = self.objects[layer.name] = self.names.make(layer.name)
                frozen = not layer.config.get("trainable", True)
                # A frozen backbone that is exactly a keras.applications model is written as one.
                known = application_call(layer.submodel) if frozen else None
                if known is not None:
                    made = Call(
                        f"keras.applications.{known[0]}",
                        [
                            Kw("input_shape", literal(list(known[1]), as_tuple=True)),
                            Kw("include_top", literal(False)),
                            Kw("weights", literal(None)),
                        ],
                    )
                else:
                    made = Call(self.submodel_function(layer), [])
                self.lines += self.statement(obj, made)
                if frozen:
                    self.lines.append(f"{_INDENT}{obj}.trainable = False")
            callee: Any = obj
        elif len(calls) > 1:
            if obj is None:
                obj = self.objects[layer.name] = self.names.make(layer.name)
                self.lines += self.statement(
                    obj, _layer_constructor(layer.class_name, layer.config, layer.name, where, True)
                )
            callee = obj
        else:
            callee = _layer_constructor(layer.class_name, layer.config, layer.name, where, True)
        args = self.arguments(node_id, layer, where)
        if layer.submodel is not None or len(calls) > 1:
            suffix = f"_{calls.index(node_id) + 1}" if len(calls) > 1 else "_out"
            base = f"{layer.name}{suffix}"
        else:
            base = layer.name
        self.assign(node_id, layer, base, Call(callee, args))

    def submodel_function(self, layer: Layer) -> str:
        from builder_app.exporters.backbones import thawed

        name = self.module.function_names.make(f"build_{layer.name}")
        graph = layer.submodel
        if not layer.config.get("trainable", True):
            graph = thawed(graph)  # one `.trainable = False` where it is made says it for every layer
        results = _checked_results(graph)
        self.module.functions.append(self.module.function(name, graph, layer.name, results))
        return name

    def arguments(self, node_id: str, layer: Layer, where: str) -> list[Any]:
        inputs = {port: self.tensors[ref] for port, ref in self.graph.inputs_of(node_id).items()}
        node = self.graph.node(node_id)
        if node.call is not None:
            return self.recorded_call(node.call, inputs, layer, where)
        if layer.submodel is not None:
            if len(inputs) == 1:
                return [next(iter(inputs.values()))]
            return [Seq("[", [inputs[p] for p in sorted(inputs)], "]")]
        # The layer's usual call, as calls.call_arguments maps ports onto it for the
        # engine and the model builder too: the three never disagree.
        try:
            ports = catalog.layer_spec(layer.class_name).ports
        except KeyError:
            ports = custom_code.ports(layer.class_name)
        args, kwargs = call_arguments(None, ports, inputs)
        written: list[Any] = [Seq("[", arg, "]") if isinstance(arg, list) else arg for arg in args]
        return written + [Kw(name, value) for name, value in kwargs.items()]

    def recorded_call(self, call: Mapping, inputs: Mapping[int, str], layer: Layer, where: str) -> list[Any]:
        args = [self.call_value(v, inputs, where) for v in call.get("args", [])]
        defaults = self.call_defaults(layer)
        for key, value in (call.get("kwargs") or {}).items():
            if value is None and (key == "mask" or defaults.get(key, inspect.Parameter.empty) is None):
                continue  # mask=None and the like: the call's own default
            if key == "training" and layer.submodel is None and value is defaults.get(key, inspect.Parameter.empty):
                # Keras records a layer's own default (Dropout's training=False); the
                # model's training flag overrides it anyway, so writing it only misleads.
                continue
            args.append(Kw(key, self.call_value(value, inputs, where)))
        return args

    def call_defaults(self, layer: Layer) -> dict[str, Any]:
        if layer.submodel is not None:
            return {"training": None, "mask": None}  # a functional model's call
        try:
            cls = catalog.keras_class(layer.class_name)
        except KeyError:
            cls = custom_code.layer_class(layer.class_name)
            if cls is None:
                return {}
        params = inspect.signature(cls.call).parameters.values()
        return {p.name: p.default for p in params if p.default is not p.empty}

    def call_value(self, value: Any, inputs: Mapping[int, str], where: str, subscript: bool = False) -> Any:
        if isinstance(value, dict):
            if set(value) == {"port"}:
                if value["port"] not in inputs:
                    raise CodegenError(f"{where}: its call uses input {value['port']}, which is not wired")
                return inputs[value["port"]]
            if "class_name" in value:
                return self.constant(value, inputs, where, subscript)
            return Seq(
                "{",
                [Pair(string(str(k)), self.call_value(v, inputs, where)) for k, v in value.items()],
                "}",
            )
        if isinstance(value, list):
            return Seq("[", [self.call_value(v, inputs, where) for v in value], "]")
        try:
            return literal(value)
        except TypeError:
            raise CodegenError(f"{where}: its call holds a {type(value).__name__}") from None

    def constant(self, value: Mapping, inputs, where: str, subscript: bool) -> Any:
        kind, config = value.get("class_name"), value.get("config") or {}
        if kind == "__slice__":
            parts = [config.get("start"), config.get("stop"), config.get("step")]
            if subscript:
                text = ":".join("" if p is None else flat(literal(p)) for p in parts[:2])
                return text if parts[2] is None else f"{text}:{flat(literal(parts[2]))}"
            return flat(Call("slice", [literal(p) for p in parts]))
        if kind == "__ellipsis__":
            return "..."
        if kind == "__tuple__":
            return flat(literal(list(config.get("value", [])), as_tuple=True))
        if kind in CONSTANT_KINDS:
            problem = constant_problem(value)
            if problem is not None:
                raise CodegenError(f"{where}: {problem}")
            return _constant_array(config)
        raise CodegenError(f"{where}: its call {marker_refusal(kind)}")

    # ------------------------------------------------------------ operations
    def operation(self, node_id: str, layer: Layer, where: str) -> None:
        node = self.graph.node(node_id)
        inputs = {port: self.tensors[ref] for port, ref in self.graph.inputs_of(node_id).items()}
        call = node.call or {"args": [{"port": 0}], "kwargs": {}}
        short = layer.class_name.rpartition(".")[2]
        if short == "GetItem" and not layer.config and len(call.get("args", [])) == 2 and not call.get("kwargs"):
            # x[:, 0] reads better than keras.ops.get_item(x, [slice(None), 0]).
            target, key = call["args"]
            keys = key if isinstance(key, list) else [key]
            items = [flat(self.call_value(k, inputs, where, subscript=True)) for k in keys]
            if isinstance(key, list) and len(keys) == 1:
                items[0] += ","  # x[0,]: a tuple of one
            expr = Index(self.call_value(target, inputs, where), items)
            self.check_operation(node_id, layer, where, "get_item", call, {})
        else:
            path, fn = _operation_function(layer.class_name, where)
            kwargs = _operation_kwargs(fn, layer.config, where)
            args = self.recorded_call(call, inputs, layer, where)
            prefix = _operation_prefix(fn, kwargs)
            writer = _ValueWriter(where)
            expr = Call(
                path,
                [writer.value(k, kwargs.pop(k), None) for k in prefix]
                + args
                + [Kw(k, writer.value(k, v, None)) for k, v in kwargs.items()],
            )
            self.check_operation(node_id, layer, where, path, call, layer.config)
        self.assign(node_id, layer, layer.name, expr)

    def check_operation(self, node_id: str, layer: Layer, where: str, path: str, call, config) -> None:
        """Runs the rendered call on symbolic tensors: it must record the graph's operation."""
        import keras

        tensors = {}
        for port, ref in self.graph.inputs_of(node_id).items():
            tensor_type = self.results[ref.node].outputs[ref.port]
            tensors[port] = keras.KerasTensor(tensor_type.shape, dtype=tensor_type.dtype)
        ports = catalog.PortsSpec("single", ("x",), 1, None)
        args, kwargs = call_arguments(call, ports, tensors)
        _, fn = _operation_function(layer.class_name, where) if path != "get_item" else (
            None, keras.ops.get_item
        )
        short = _operation_kwargs(fn, config, where)
        prefix = _operation_prefix(fn, short)
        try:
            out = fn(*[short.pop(k) for k in prefix], *args, **kwargs, **short)
            op = keras.tree.flatten(out)[0]._keras_history.operation
            faithful = type(op).__name__ == layer.class_name.rpartition(".")[2] and _same(
                {k: v for k, v in op.get_config().items() if k != "name"}, layer.config, "config"
            )
        except Exception:  # noqa: BLE001 - any refusal means the code would not match
            faithful = False
        if not faithful:
            raise CodegenError(
                f"{where}: the keras.ops call {layer.class_name.rpartition('.')[2]} with config "
                f"{json.dumps(layer.config)[:80]} cannot be written as a keras.ops function call"
            )

    # --------------------------------------------------------------- results
    def statement(self, target: str | list[str], expr: Any) -> list[str]:
        return code_printer.statement(target, expr, 1, self.module.width)

    def assign(self, node_id: str, layer: Layer, base: str, expr: Any) -> None:
        count = self.counts.get(node_id, 1)
        if not any(PortRef(node_id, port) in self.used for port in range(count)):
            self.lines += self.statement(None, expr)  # a dead end: called, its result unused
            return
        if count == 1:
            var = self.names.make(base)
            self.lines += self.statement(var, expr)
            self.tensors[PortRef(node_id, 0)] = var
            return
        suffixes = _OUTPUT_SUFFIXES.get((layer.class_name, count)) or _OUTPUT_SUFFIXES.get(
            layer.class_name, ()
        )
        targets = []
        for port in range(count):
            if PortRef(node_id, port) not in self.used:
                targets.append("_")
                continue
            suffix = suffixes[port] if port < len(suffixes) else str(port) if port else ""
            var = self.names.make(f"{base}_{suffix}" if suffix else base)
            self.tensors[PortRef(node_id, port)] = var
            targets.append(var)
        if layer.class_name not in _FLAT_OUTPUTS and layer.submodel is None:
            expr = Call("keras.tree.flatten", [expr])
        self.lines += self.statement(targets, expr)


def _grouped(value: Any) -> Any:
    if isinstance(value, dict):
        return Seq("{", [Pair(string(k), v) for k, v in value.items()], "}")
    if isinstance(value, list):
        return Seq("[", value, "]")
    return value


def _constant_array(config: Mapping[str, Any]) -> Call:
    """A constant array of a call as ``keras.ops.convert_to_tensor([...], dtype="float32")``.

    That is how Keras itself loads one (``__tensor__``), and the nested list reads
    as the values: each float written as short as its dtype allows (``-103.939``,
    not float32's ``-103.93900299072266``) while it still names the same number.
    """
    import numpy as np

    dtype, data = config["dtype"], config["value"]
    if dtype in ("float16", "float32"):
        data = _short_floats(data, getattr(np, dtype))
    return Call("keras.ops.convert_to_tensor", [literal(data), Kw("dtype", string(dtype))])


def _argument_constant(value: Mapping[str, Any], where: str) -> Call:
    """A constant array in a layer's arguments, as the code that made it would write it.

    ``__numpy__`` (``keras.initializers.Constant(np.eye(3).flatten())``) is written
    as ``np.array([...])``, its dtype named unless NumPy infers it from the numbers;
    ``__tensor__`` as :func:`_constant_array` writes a call's. Both are plain
    numbers, bounded as an import bounds them.
    """
    import numpy as np

    problem = constant_problem(value)
    if problem is not None:
        raise CodegenError(f"{where} {problem}")
    config = value["config"]
    if value["class_name"] == "__tensor__":
        return _constant_array(config)
    dtype, data = config["dtype"], config["value"]
    if dtype in ("float16", "float32"):
        data = _short_floats(data, getattr(np, dtype))
    args: list[Any] = [literal(data)]
    if np.asarray(data).dtype != np.dtype(dtype):
        args.append(Kw("dtype", string(dtype)))
    return Call("np.array", args)


def _short_floats(value: Any, narrow: type) -> Any:
    """Floats in nested lists replaced by the shortest decimal that is the same ``narrow`` number."""
    if isinstance(value, list):
        return [_short_floats(v, narrow) for v in value]
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    exact = narrow(value)
    short = float(str(exact))
    return short if narrow(short) == exact else value


# --------------------------------------------------------------------------- #
# keras.ops
# --------------------------------------------------------------------------- #


def _operation_function(class_name: str, where: str) -> tuple[str, Any]:
    """The public ``keras.ops`` function that records an operation class."""
    import keras

    module, _, short = class_name.rpartition(".")
    fn_name = snake_case(short)
    namespace = _OPS_NAMESPACES.get(module)
    candidates = [f"keras.ops.{fn_name}"]
    if namespace:
        candidates.append(f"keras.ops.{namespace}.{fn_name}")
    for path in candidates:
        obj: Any = keras
        for part in path.split(".")[1:]:
            obj = getattr(obj, part, None)
        if callable(obj) and getattr(obj, "__module__", "") == module:
            return path, obj
    raise CodegenError(f"{where}: the operation {short} has no keras.ops function to write it with")


def _operation_kwargs(fn: Any, config: Mapping, where: str) -> dict[str, Any]:
    """The operation's config as function arguments, defaults left out."""
    params = inspect.signature(fn).parameters
    kwargs = {}
    for key, value in config.items():
        param = params.get(key)
        if param is None:
            raise CodegenError(f"{where}: keras.ops.{fn.__name__} takes no argument '{key}'")
        if param.default is param.empty or not _same(value, param.default, key):
            kwargs[key] = value
    return kwargs


def _operation_prefix(fn: Any, kwargs: Mapping) -> list[str]:
    """Config arguments that must come first, before ``*operands`` (einsum's subscripts)."""
    params = list(inspect.signature(fn).parameters.values())
    star = next((i for i, p in enumerate(params) if p.kind is p.VAR_POSITIONAL), None)
    if star is None:
        return []
    return [p.name for p in params[:star] if p.name in kwargs]
