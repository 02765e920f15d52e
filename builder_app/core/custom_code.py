"""Layer classes from outside ``keras.layers``: Keras's own, and the user's trusted code.

Two kinds of class reach a graph without being in the catalog:

* **Shipped with Keras** (ConvNeXt's ``LayerScale``, InceptionResNetV2's
  ``CustomScaleLayer``): a saved config names them by Keras's private module and class
  (see :data:`keras_compat.SHIPPED_LAYER_PACKAGES`).
  They are known layers, taken from the installed Keras (:func:`keras_compat.shipped_layer_classes`),
  never from the file.
* **The user's own**: Python source files a project holds (:class:`CodeFile`). Their
  text is data until the user trusts it (:mod:`builder_app.core.trust`); only then
  does :func:`activate` execute it, and its ``keras.layers.Layer`` subclasses become
  known (:func:`layer_class`) for this process: the shape engine, the exporters and
  the training child find them here.

Listing a file's classes (:func:`class_names`) reads its syntax tree; it never runs
the file. No Qt here; Keras is imported only by :func:`activate` and :func:`layer_class`.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
import threading
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from builder_app.core.graph import INPUT_CLASS, SUBMODEL_CLASS, ModelGraph, plain_layers

#: The palette category of the user's trusted classes.
CUSTOM_CATEGORY = "Custom"
#: Where a project file keeps its code (``custom/<name>.py``).
CUSTOM_DIR = "custom"
#: The most code files a project holds, and the size of each.
MAX_CODE_FILES = 32
MAX_CODE_BYTES = 1024 * 1024
#: The config key of an opaque node's declared output shapes (a list of shapes, the
#: batch dimension included: ``[[null, 16]]``). Stripped before Keras sees the config.
DECLARED_SHAPES_KEY = "__output_shapes__"

_FILE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\.py")

_lock = threading.Lock()
_active: dict[str, type] = {}  # class name -> class, of the code activated in this process
_active_hashes: dict[str, str] = {}  # file name -> hash of the text activated under it
_active_files: dict[str, CodeFile] = {}  # module name -> the file activated as it
_objects: dict[str, tuple[str, Any]] = {}  # registered name -> (kind, class or function), not layers


class CustomCodeError(ValueError):
    """Custom code cannot be stored or run; the one-line message names the file."""


@dataclass(frozen=True)
class CodeFile:
    """One Python source file of custom layers, held by a project.

    Attributes:
        name: The file name (``sampling.py``), a Python module name plus ``.py``.
        text: The source text.
    """

    name: str
    text: str

    def __post_init__(self) -> None:
        problem = name_problem(self.name)
        if problem:
            raise CustomCodeError(problem)
        if not isinstance(self.text, str):
            raise CustomCodeError(f"{self.name}: the code must be text")
        if len(self.text.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            raise CustomCodeError(f"{self.name}: more than {MAX_CODE_BYTES // 1024} KiB of code")

    @property
    def sha256(self) -> str:
        """The content hash trust is kept under."""
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def module(self) -> str:
        return self.name[:-3]

    @property
    def member(self) -> str:
        """The file's path inside a project archive."""
        return f"{CUSTOM_DIR}/{self.name}"


@dataclass(frozen=True)
class LambdaCode:
    """The function a ``Lambda`` layer of the project holds (Keras's serialized bytecode).

    Trusted like a code file, by the hash of its text (the function's config as JSON).
    """

    layer: str
    text: str

    @property
    def name(self) -> str:
        return f"Lambda '{self.layer}'"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()


_allowed_lambdas: set[str] = set()


def _lambda_text(config: Mapping[str, Any]) -> str:
    import json

    parts = {k: config.get(k) for k in ("function", "output_shape", "arguments") if k in config}
    return json.dumps(parts, sort_keys=True, default=repr)


def lambda_code(graph: ModelGraph) -> list[LambdaCode]:
    """The functions of the graph's ``Lambda`` layers (sub-models' included), as trustable code."""
    return [
        LambdaCode(layer.name, _lambda_text(layer.config))
        for layer in plain_layers(graph)
        if layer.class_name == "Lambda"
    ]


def allow_lambdas(codes: Iterable[LambdaCode]) -> None:
    """Lets these (trusted) Lambda functions run in this process."""
    with _lock:
        _allowed_lambdas.update(code.sha256 for code in codes)


def lambda_allowed(config: Mapping[str, Any]) -> bool:
    """Whether a Lambda with this config was trusted and allowed to run here."""
    text = _lambda_text(config)
    with _lock:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() in _allowed_lambdas


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name a code file, or None."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        return f"custom code file name {str(name)[:80]!r} is not a Python module name ending in .py"
    return None


def read_file(path) -> CodeFile:
    """A code file from disk (reads it; runs nothing).

    Raises:
        CustomCodeError: Unreadable, not UTF-8, too large, or a bad name.
    """
    from pathlib import Path

    path = Path(path)
    try:
        if path.stat().st_size > MAX_CODE_BYTES:
            raise CustomCodeError(f"{path}: more than {MAX_CODE_BYTES // 1024} KiB of code")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CustomCodeError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CustomCodeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return CodeFile(path.name, text)


def class_names(file: CodeFile) -> list[str]:
    """The top-level classes a file defines, from its syntax tree (nothing is run).

    Raises:
        CustomCodeError: The file is not valid Python.
    """
    try:
        tree = ast.parse(file.text, filename=file.name)
    except (SyntaxError, ValueError) as exc:
        line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        raise CustomCodeError(f"{file.name}{line}: not valid Python ({getattr(exc, 'msg', exc)})") from None
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef)]


def registered_classes(file: CodeFile) -> set[str]:
    """The classes (and functions) of a file decorated with ``register_keras_serializable`` (syntax only)."""
    tree = ast.parse(file.text, filename=file.name)
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if "register_keras_serializable" in ast.unparse(target):
                    found.add(node.name)
    return found


def describe(files: Sequence[CodeFile]) -> str:
    """``sampling.py (Sampling), blocks.py (PatchEncoder, Patches)``: what trusting runs."""
    parts = []
    for file in files:
        if isinstance(file, LambdaCode):
            parts.append(f"{file.name} (its function's bytecode)")
            continue
        try:
            names = ", ".join(class_names(file)) or "no classes"
        except CustomCodeError:
            names = "not valid Python"
        parts.append(f"{file.name} ({names})")
    return ", ".join(parts)


# ------------------------------------------------------------ known classes
def shipped_class(class_name: str) -> type | None:
    """The Keras class of a layer Keras ships outside keras.layers, or None."""
    from builder_app.core import keras_compat

    if not class_name.startswith(keras_compat.SHIPPED_LAYER_PACKAGES):
        return None
    return keras_compat.shipped_layer_classes().get(class_name)


def bare_name(class_name: str) -> str:
    """``sampling.Sampling`` -> ``Sampling`` (an imported class keeps its module)."""
    return class_name.rpartition(".")[2].rpartition(">")[2]


def layer_class(class_name: str) -> type | None:
    """The class for a layer outside the catalog: shipped with Keras, or activated user code."""
    if not isinstance(class_name, str):
        return None
    if class_name.startswith("keras."):
        return shipped_class(class_name)
    with _lock:
        return _active.get(bare_name(class_name))


_specs: dict[type, Any] = {}


def layer_spec(class_name: str, config: Mapping[str, Any] | None = None):
    """A :class:`~builder_app.core.catalog.LayerSpec` for a class outside the catalog, or None.

    Its parameters come from ``__init__``'s signature and ``get_config`` (``config``, a
    layer's own, gives the values), as the catalog's do; the category is "Custom".
    """
    cls = layer_class(class_name)
    if cls is None:
        return None
    from dataclasses import replace

    from builder_app.core import catalog

    spec = _specs.get(cls)
    if spec is None:
        try:
            spec = catalog._describe(cls.__name__, cls, dict(config) if config else None)  # noqa: SLF001
        except Exception:  # noqa: BLE001 - the user's class may fail inspection: one input, no params
            spec = catalog.LayerSpec(cls.__name__, "Custom", cls.__name__, (),
                                     catalog.PortsSpec("single", ("inputs",), 1, 1), cls.__module__, "")
        spec = _specs[cls] = replace(spec, class_name=class_name, category="Custom")
    return spec


def default_config(class_name: str) -> dict[str, Any]:
    """The config of a freshly made layer of a class outside the catalog (for the palette).

    Required arguments get the catalog's starting values by name (``units`` 32...),
    else 1.

    Raises:
        KeyError: The class is unknown, or refuses those values.
    """
    import inspect

    from builder_app.core import catalog
    from builder_app.core.text import json_plain

    cls = layer_class(class_name)
    if cls is None:
        raise KeyError(f"{class_name!r} is not a known layer class")
    required = {
        p.name: catalog._STARTING.get(p.name, 1)  # noqa: SLF001
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    try:
        config = json_plain(cls(**required).get_config(), other=repr)
    except Exception as exc:  # noqa: BLE001 - the user's class refused: say so as a KeyError
        raise KeyError(f"{bare_name(class_name)}({required}) failed: {_one_line(exc)}") from None
    return {k: v for k, v in config.items() if k != "name"}


def ports(class_name: str):
    """The ports of a class outside the catalog (one input unless a call template says more)."""
    if class_name == "Lambda":  # a trusted one: one input, as Keras's Lambda.call takes
        from builder_app.core import catalog

        return catalog.PortsSpec("single", ("inputs",), 1, 1)
    spec = layer_spec(class_name)
    return spec.ports if spec is not None else None


def source_of(cls: type) -> CodeFile | None:
    """The activated file that defines ``cls``, or None."""
    with _lock:
        return _active_files.get(getattr(cls, "__module__", ""))


def layer_class_known(class_name: str) -> bool:
    """Whether :func:`layer_class` finds a class without importing Keras now."""
    if not isinstance(class_name, str):
        return False
    if class_name.startswith("keras."):
        from builder_app.core import catalog

        # Keras fully imported (by the loader), not merely being imported on another thread.
        return catalog.keras_loaded() and layer_class(class_name) is not None
    with _lock:
        return bare_name(class_name) in _active


def active_classes() -> dict[str, type]:
    """The user's layer classes activated in this process, by class name."""
    with _lock:
        return dict(_active)


def active_objects() -> dict[str, tuple[str, Any]]:
    """The user's other objects activated here: registered name -> (kind, class or function)."""
    with _lock:
        return dict(_objects)


def is_outside_catalog(class_name: str) -> bool:
    """Whether a layer class needs code from outside the catalog (and is not an operation)."""
    from builder_app.core import catalog
    from builder_app.core.keras_build import is_operation

    if class_name in (INPUT_CLASS, SUBMODEL_CLASS, "Sequential") or is_operation(class_name):
        return False
    try:
        catalog.layer_spec(class_name)
    except KeyError:
        return True
    return False


def needs_code(graph: ModelGraph) -> list[tuple[str, str]]:
    """(node id, class name) of each node whose class neither Keras nor activated code defines.

    An untrusted ``Lambda`` is one too: it holds its code, which runs only once trusted.
    """
    found = []
    for node_id, node in graph.nodes.items():
        layer = graph.layers[node.layer]
        if layer.submodel is not None:
            continue
        if layer.class_name == "Lambda":
            if not lambda_allowed(layer.config):
                found.append((node_id, layer.class_name))
            continue
        if is_outside_catalog(layer.class_name) and layer_class(layer.class_name) is None:
            found.append((node_id, layer.class_name))
        elif _lacks_object_code(layer.config, 0):  # a regularizer, ... of code not run here
            found.append((node_id, layer.class_name))
    return found


def _lacks_object_code(value: Any, depth: int) -> bool:
    """Whether a config holds an object of the user's code (``myobjs>MyReg``) not active here."""
    if depth > 32:
        return False
    if isinstance(value, list):
        return any(_lacks_object_code(v, depth + 1) for v in value)
    if not isinstance(value, Mapping):
        return False
    name = object_name(value)
    if name is not None and (value.get("class_name") != "function" or ">" in name) and custom_object(value) is None:
        return True
    return any(_lacks_object_code(v, depth + 1) for v in value.values())


def declared_shapes(config: Mapping[str, Any]) -> list[tuple[int | None, ...]] | None:
    """The declared output shapes of an opaque node (batch dimension first), or None.

    Each is a list of positive ints or null, at most 8 dimensions; at most 16 outputs.
    """
    value = config.get(DECLARED_SHAPES_KEY) if isinstance(config, Mapping) else None
    if not isinstance(value, list) or not 0 < len(value) <= 16:
        return None
    shapes = []
    for shape in value:
        if not isinstance(shape, list) or not 0 < len(shape) <= 8:
            return None
        if not all(d is None or (type(d) is int and 0 < d < 2**31) for d in shape):
            return None
        shapes.append(tuple(shape))
    return shapes


def parse_declared_shapes(text: str) -> list[list[int | None]]:
    """``"(None, 16); (None, 4)"`` -> ``[[None, 16], [None, 4]]`` (one shape per output).

    Raises:
        CustomCodeError: Not shapes (the message says what is expected).
    """
    expected = "shapes like (None, 16), one per output, separated by ';'"
    shapes = []
    for part in [p.strip() for p in text.split(";") if p.strip()]:
        dims = [d.strip() for d in part.strip("()[] ").split(",") if d.strip()]
        try:
            shape = [None if d.lower() in ("none", "null", "?") else int(d) for d in dims]
        except ValueError:
            raise CustomCodeError(f"{part!r} is not a shape: {expected}") from None
        shapes.append(shape)
    if declared_shapes({DECLARED_SHAPES_KEY: shapes}) is None:
        raise CustomCodeError(f"{text[:80]!r}: {expected} (positive sizes, at most 8 dimensions, 16 outputs)")
    return shapes


def keras_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A layer config without the app's own keys (the declared shapes of an opaque node)."""
    return {k: v for k, v in config.items() if k != DECLARED_SHAPES_KEY}


# ------------------------------------------------------------- running code
def activate(files: Iterable[CodeFile]) -> dict[str, type]:
    """Runs trusted code files and makes their layer classes known in this process.

    The caller has checked the trust (:func:`builder_app.core.trust.check`); this
    runs the code. Each file becomes a module named after it (``sampling.py`` ->
    ``sampling``), so Keras finds its classes the way a ``.keras`` file names them.
    Running the same text again does nothing.

    Returns:
        The ``keras.layers.Layer`` subclasses each file defines, by class name.

    Raises:
        CustomCodeError: A file raises when run (one line: file, line, error), or
            two files define one class name.
    """
    from builder_app.core import keras_compat

    keras = keras_compat.import_keras()
    found: dict[str, type] = {}
    for file in files:
        with _lock:
            if _active_hashes.get(file.name) == file.sha256:
                found.update({n: c for n, c in _active.items() if c.__module__ == file.module})
                continue
        class_names(file)  # a syntax error is reported like any other, in one line
        taken = _module_taken(file.module)
        if taken:
            raise CustomCodeError(f"{file.name}: the module name '{file.module}' is {taken}; rename the file")
        module = types.ModuleType(file.module)
        module.__file__ = f"<{file.member}>"
        previous = sys.modules.get(file.module)
        sys.modules[file.module] = module
        try:
            exec(compile(file.text, module.__file__, "exec"), module.__dict__)  # noqa: S102 - trusted
        except BaseException as exc:  # noqa: BLE001 - anything the user's code raises
            if previous is None:
                sys.modules.pop(file.module, None)
            else:
                sys.modules[file.module] = previous
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise CustomCodeError(f"{file.name}{_code_line(exc, module.__file__)}: {_one_line(exc)}") from None
        classes = {
            name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, keras.layers.Layer) and obj.__module__ == file.module
        }
        for cls in classes.values():
            register(keras, cls)
        objects = _custom_objects(keras, module, file.module)
        with _lock:
            for name in classes:
                other = _active.get(name)
                if other is not None and other.__module__ != file.module:
                    raise CustomCodeError(f"{file.name}: class {name} is also defined by {other.__module__}.py")
            for name in [n for n, c in _active.items() if c.__module__ == file.module]:
                del _active[name]
            _active.update(classes)
            for key in [k for k, (_, o) in _objects.items() if o.__module__ == file.module]:
                del _objects[key]
            _objects.update(objects)
            _active_hashes[file.name] = file.sha256
            _active_files[file.module] = file
        found.update(classes)
    return found


#: What a fresh Python runs to load the code files written beside a ``.keras`` file
#: (``sys.argv``-free: the module names come in ``BUILDER_APP_CUSTOM_MODULES``).
LOADER = """
import importlib, inspect, os
import keras
_bases = (keras.layers.Layer, keras.initializers.Initializer, keras.regularizers.Regularizer,
          keras.constraints.Constraint)
for _name in filter(None, os.environ.get("BUILDER_APP_CUSTOM_MODULES", "").split(",")):
    _module = importlib.import_module(_name)
    for _attr, _obj in list(vars(_module).items()):
        if (getattr(_obj, "__module__", None) == _name and not _attr.startswith("_")
                and (inspect.isfunction(_obj) or inspect.isclass(_obj) and issubclass(_obj, _bases))
                and keras.saving.get_registered_name(_obj) == _obj.__name__):
            keras.saving.register_keras_serializable(package=_name)(_obj)
"""


def register(keras, cls: type) -> None:
    """Registers a class its file did not register, under the file's module name as package.

    A ``.keras`` file then names it ``<module>><Class>``, which the exported Python (and
    :data:`LOADER`) registers the same way.
    """
    if keras.saving.get_registered_name(cls) == cls.__name__:
        keras.saving.register_keras_serializable(package=cls.__module__)(cls)


def files_for(graph: ModelGraph) -> list[CodeFile]:
    """The activated files that define the classes a graph (and its sub-models) uses."""
    found: dict[str, CodeFile] = {}
    for layer in plain_layers(graph):
        if layer.class_name.startswith("keras.") or not is_outside_catalog(layer.class_name):
            continue
        cls = layer_class(layer.class_name)
        file = source_of(cls) if cls is not None else None
        if file is not None:
            found[file.name] = file
    found.update((file.name, file) for file in object_files(graph))  # regularizers, initializers...
    return [found[name] for name in sorted(found)]


def deactivate_all() -> None:
    """Forgets every activated class (tests; a project closed for good)."""
    with _lock:
        for cls in _active.values():
            sys.modules.pop(cls.__module__, None)
        for module in _active_files:  # a file of regularizers, ... defines no layer
            sys.modules.pop(module, None)
        _active.clear()
        _objects.clear()
        _active_hashes.clear()
        _active_files.clear()
        _allowed_lambdas.clear()


def _module_taken(name: str) -> str | None:
    """Why a code file may not become module ``name`` (it would shadow the app's), or None."""
    import importlib.util

    with _lock:
        ours = name in _active_files
    if ours:
        return None
    if name in sys.stdlib_module_names:
        return "a standard library module"
    if name in sys.modules:
        return "an installed module already in use"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    origin = str(getattr(spec, "origin", "") or "")
    if "site-packages" in origin or "dist-packages" in origin:
        return "an installed package"
    return None


def _code_line(exc: BaseException, filename: str) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" line {exc.lineno}"
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# ------------------------------------------------ custom objects other than layers
#: The kinds of object a layer argument may hold besides layers, by the Keras base class.
OBJECT_KINDS = ("initializer", "regularizer", "constraint", "activation")


def _custom_objects(keras, module: types.ModuleType, name: str) -> dict[str, tuple[str, Any]]:
    """The initializers, regularizers, constraints and activation functions a run file defines.

    Each is registered (under the file's module name as package, unless the file did so
    itself) and known by its registered name (``sampling>MyReg``), as a ``.keras`` file
    names it. An activation is a public top-level function of the file.
    """
    bases = (
        ("initializer", keras.initializers.Initializer),
        ("regularizer", keras.regularizers.Regularizer),
        ("constraint", keras.constraints.Constraint),
    )
    found: dict[str, tuple[str, Any]] = {}
    for attr, obj in vars(module).items():
        if getattr(obj, "__module__", None) != name or attr.startswith("_"):
            continue
        if isinstance(obj, type):
            kind = next((k for k, base in bases if issubclass(obj, base)), None)
        else:
            kind = "activation" if isinstance(obj, types.FunctionType) else None
        if kind is None:
            continue
        if keras.saving.get_registered_name(obj) == obj.__name__:
            keras.saving.register_keras_serializable(package=name)(obj)
        found[keras.saving.get_registered_name(obj)] = (kind, obj)
    return found


def object_name(value: Any) -> str | None:
    """The name a serialized object outside Keras goes by (``myobjs>MyReg``), or None.

    None for Keras's own objects, constants and markers. A function (an activation) is
    named by its config (``myobjs>my_act``); the caller tells Keras's own names apart.
    """
    if not isinstance(value, Mapping):
        return None
    module, class_name, registered = value.get("module"), value.get("class_name"), value.get("registered_name")
    if class_name == "function":
        config = value.get("config")
        if not isinstance(config, str):
            return None
        return config if module in (None, "builtins") or ">" in config else None
    if not isinstance(class_name, str) or class_name.startswith("__"):
        return None
    if isinstance(registered, str) and registered != class_name:
        return registered
    if isinstance(module, str) and module != "keras" and not module.startswith(("keras.", "builtins")):
        return f"{module}>{class_name}"
    return None


def custom_object(value: Any) -> tuple[str, Any] | None:
    """(kind, class or function) of the activated code a serialized object names, or None."""
    name = object_name(value)
    if name is None:
        return None
    with _lock:
        found = _objects.get(name)
        if found is None and value.get("class_name") != "function":
            # An unregistered class saved under its file's module (Keras finds it there,
            # in the module the app made): the app registered it under that name.
            found = _objects.get(f"{value.get('module')}>{value.get('class_name')}")
            if found is not None and getattr(found[1], "__module__", None) != value.get("module"):
                found = None  # Keras would import the module the config names
    return found


def object_files(graph: ModelGraph) -> list[CodeFile]:
    """The activated files whose objects (regularizers, ...) the graph's layer configs use."""
    found: dict[str, CodeFile] = {}

    def walk(value: Any, depth: int) -> None:
        if depth > 32:
            return
        if isinstance(value, list):
            for item in value:
                walk(item, depth + 1)
        elif isinstance(value, Mapping):
            hit = custom_object(value)
            if hit is not None:
                with _lock:
                    file = _active_files.get(hit[1].__module__)
                if file is not None:
                    found[file.name] = file
            for item in value.values():
                walk(item, depth + 1)

    for layer in plain_layers(graph):
        walk(layer.config, 0)
    return [found[name] for name in sorted(found)]
