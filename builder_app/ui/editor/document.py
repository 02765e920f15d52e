"""The open project as the editor sees it: the graph, its shapes, the undo stack, the file.

Every edit goes through :meth:`Document.push`, which applies one core operation
(:mod:`builder_app.core.ops`) inside a ``QUndoCommand``; undo applies the inverse
the operation returned. Only the editor controller
(:mod:`builder_app.ui.editor.controller`) calls it. Views subscribe to
:attr:`Document.graph_changed` (every change of the root graph or of a sub-model's
graph; each change names its graph) and :attr:`shapes_updated` (which nodes of
which graph have new results).

Keras is imported in a background thread (:class:`KerasLoader`); until it is
ready :attr:`Document.engine` is ``None`` and shapes are unknown. Shapes are
recomputed on the GUI thread after each burst of edits, output shapes first (fast),
parameter counts and build checks when the event loop is idle. A big model's first
pass runs on a worker thread; headless callers (``builder-app render``, a diagram
export) use ``attach_engine(background=False)``, which computes everything at once.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Hashable
from pathlib import Path

from PySide6 import QtCore, QtGui

from builder_app.core import editing
from builder_app.core.events import Change
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Op
from builder_app.core.project import Project
from builder_app.core.shapes import NodeResult, ShapeEngine
from builder_app.ui import collector

#: Models with at least this many nodes get their first shape pass on a worker thread
#: (on the GUI thread a pass costs about 6 ms a node: ResNet50's 177 froze the window for 1 s).
BACKGROUND_NODES = 64


class _OpCommand(QtGui.QUndoCommand):
    """One core operation on the undo stack; consecutive edits with one merge key merge."""

    _ids: dict[Hashable, int] = {}

    def __init__(self, document: Document, graph: ModelGraph, op: Op, inverse: Op, text: str, merge_key: Hashable | None):
        super().__init__(text)
        self.document = document
        self.graph = graph
        self.op = op
        self.inverse = inverse
        self.merge_key = merge_key
        self._merged: list[_OpCommand] = []
        self._applied = True

    def id(self) -> int:  # noqa: A003 - Qt's name
        if self.merge_key is None:
            return -1
        return self._ids.setdefault(self.merge_key, len(self._ids) + 1)

    def mergeWith(self, other: QtGui.QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, _OpCommand) or other.merge_key != self.merge_key:
            return False
        if other.graph is not self.graph:
            return False
        self._merged.append(other)
        return True

    def redo(self) -> None:
        if self._applied:  # push() applied it already, to hear a refusal first
            self._applied = False
        else:
            self.inverse = self.graph.apply(self.op)
            for merged in self._merged:
                merged.inverse = self.graph.apply(merged.op)
        self.document._edited()

    def undo(self) -> None:
        for merged in reversed(self._merged):
            self.graph.apply(merged.inverse)
        self.graph.apply(self.inverse)
        self.document._edited()


class KerasLoader(QtCore.QObject):
    """Imports Keras (and TensorFlow) on a background thread; ``ready`` fires on the GUI thread.

    It also makes sure the layer catalog is loaded: read from its cache, or derived
    from Keras (and cached for the next start) where this Keras has none yet.
    """

    ready = QtCore.Signal()
    failed = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._done = threading.Event()
        self.error: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._load, name="keras-loader", daemon=True).start()

    @property
    def is_ready(self) -> bool:
        return self._done.is_set() and self.error is None

    def _load(self) -> None:
        try:
            from builder_app.core import catalog
            from builder_app.core.quiet import import_keras_quietly

            import_keras_quietly()
            # The palette and the inspector read the catalog from its cache from the first
            # frame (catalog.load_cached); derived here, and cached, where there is none yet.
            catalog.prepare()
            # TensorFlow and Keras leave millions of long-lived objects; a full garbage
            # collection scanning them all stalls the window for ~0.3 s. Keep them out.
            gc.freeze()
        except Exception as exc:  # noqa: BLE001 - reported to the user, the editor keeps working
            self.error = f"Keras could not be loaded: {type(exc).__name__}: {exc}"
        self._done.set()
        # Queued across threads: the slots run on the GUI thread.
        if self.error is None:
            self.ready.emit()
        else:
            self.failed.emit(self.error)


class Document(QtCore.QObject):
    """The project being edited.

    Signals:
        graph_changed(Change): after every change of the graph or of a sub-model's graph.
        shapes_updated(dict): results changed: ``{graph: {node ids}}`` for the
            nodes whose shapes, parameter counts or errors are new (model-wide
            facts such as totals may have changed even when it is empty).
        computing(bool): a big model's first shape pass started (True) or ended (False).
        dirty_changed(bool): the project now differs (or no longer) from its file.
    """

    graph_changed = QtCore.Signal(object)
    shapes_updated = QtCore.Signal(object)
    computing = QtCore.Signal(bool)
    _engine_computed = QtCore.Signal(object)
    dirty_changed = QtCore.Signal(bool)

    def __init__(self, project: Project | None = None, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        # Its worker threads allocate a lot: Python's collector must not run on them.
        collector.install(QtCore.QCoreApplication.instance())
        self.project = project or Project(ModelGraph("model"))
        editing.place_if_unpositioned(self.project.graph)
        self.undo_stack = QtGui.QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self.engine: ShapeEngine | None = None
        self._followed: dict[int, ModelGraph] = {}
        self._follow(self.project.graph)
        self._shape_timer = QtCore.QTimer(self, singleShot=True, interval=0)
        self._shape_timer.timeout.connect(self.update_shapes)
        self._build_timer = QtCore.QTimer(self, singleShot=True, interval=150)
        self._build_timer.timeout.connect(self._update_builds)
        self._extra_dirty = False
        self._changes = 0
        self._computing = False
        self._closed = False
        self._pass: dict | None = None  # the worker thread's pass: its engine, once done
        self._worker: threading.Thread | None = None
        self._engine_computed.connect(self._adopt_engine)
        from builder_app.ui.editor.controller import EditorController

        #: The one door every editing gesture goes through.
        self.controller = EditorController(self, self)

    # ------------------------------------------------------------------ state
    @property
    def graph(self) -> ModelGraph:
        return self.project.graph

    @property
    def path(self) -> Path | None:
        return self.project.path

    @property
    def is_computing(self) -> bool:
        """True while a big model's first shape pass runs on a worker thread."""
        return self._computing

    @property
    def is_dirty(self) -> bool:
        return self._extra_dirty or not self.undo_stack.isClean()

    def mark_saved(self, path: Path) -> None:
        self.project.path = Path(path)
        self._extra_dirty = False
        self.undo_stack.setClean()
        self.dirty_changed.emit(False)

    def _clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean or self._extra_dirty)

    def mark_dirty(self) -> None:
        """Changes outside the undo stack (new trained weights, training settings)."""
        self._extra_dirty = True
        self.dirty_changed.emit(True)

    def title(self) -> str:
        name = self.path.name if self.path else "untitled"
        return name + (" *" if self.is_dirty else "")

    # ------------------------------------------------------------------ edits
    def push(self, op: Op, text: str, merge_key: Hashable | None = None, graph: ModelGraph | None = None) -> None:
        """Applies ``op`` to ``graph`` (default: the model) as one undoable step.

        Consecutive pushes with the same ``merge_key`` (e.g. keystrokes in one field)
        become one undo step.

        Raises:
            GraphError: The operation was refused; nothing changed, nothing was pushed.
        """
        target = graph if graph is not None else self.graph
        self._follow(target)
        inverse = target.apply(op)
        self.undo_stack.push(_OpCommand(self, target, op, inverse, text, merge_key))

    def _edited(self) -> None:
        self._shape_timer.start()

    # ------------------------------------------------------------------ events
    def _follow(self, graph: ModelGraph) -> None:
        if id(graph) in self._followed:
            return
        self._followed[id(graph)] = graph
        graph.changed.connect(self._relay)
        for layer in graph.layers.values():
            if layer.submodel is not None:
                self._follow(layer.submodel)

    def _relay(self, change: Change) -> None:
        if change.kind.changes_shapes:
            self._changes += 1
        for name in change.layers:
            for graph in list(self._followed.values()):
                layer = graph.layers.get(name)
                if layer is not None and layer.submodel is not None:
                    self._follow(layer.submodel)
        self.graph_changed.emit(change)
        self._shape_timer.start()

    # ------------------------------------------------------------------ shapes
    def attach_engine(self, *, background: bool = True) -> None:
        """Starts shape inference (call once Keras is loaded).

        A big model's first pass runs on a worker thread, on a copy of the graph;
        the finished engine is handed over on the GUI thread if the graph did not
        change meanwhile (else the pass starts again on the new graph).

        With ``background=False`` (headless use: rendering, exporting a diagram)
        everything is computed here, at any size: on return :attr:`engine` is set
        and up to date (shapes, parameter counts, checks), a pass already running
        on the worker thread has been waited for and adopted, and no thread is left.
        """
        if self._closed:
            return
        if self._computing:
            if not background:
                self._finish_pass()
            return
        if self.engine is not None:
            if not background:
                self._update_now()
            return
        if not background or len(self.graph) < BACKGROUND_NODES:
            self.engine = ShapeEngine(self.graph)
            if background:
                self._shape_timer.start()
            else:
                self._update_now()
            return
        self._computing = True
        self.computing.emit(True)
        box = {"engine": None, "seen": self._changes, "taken": False}
        self._pass = box
        # A snapshot here (its configs are deep copies); the graph is built from it on the
        # worker thread: half the copy's cost, and ResNet50's ~40 ms, off the GUI thread.
        data = self.graph.to_dict()

        def work() -> None:
            engine = ShapeEngine(ModelGraph.from_dict(data))
            try:
                engine.update()
            except Exception:  # noqa: BLE001 - the GUI thread computes it again and shows what fails
                engine.close()
                engine = None
            box["engine"] = engine
            try:
                self._engine_computed.emit(box)
            except RuntimeError:  # the document is gone (closed and deleted): nobody takes it
                if engine is not None:
                    engine.close()

        # Not a daemon: a process exiting mid-pass waits for it rather than tearing
        # TensorFlow down under a running thread (which aborts the process).
        self._worker = threading.Thread(target=work, name="shapes", daemon=False)
        self._worker.start()

    def _finish_pass(self) -> None:
        """Waits for the worker thread's pass and adopts its engine here, now."""
        box, worker = self._pass, self._worker
        if worker is not None:
            worker.join()
        if box is not None:
            self._adopt_engine(box, background=False)

    def _update_now(self) -> None:
        self._shape_timer.stop()
        self._build_timer.stop()
        self.engine.update()
        self.shapes_updated.emit(self.engine.take_changes())

    def _adopt_engine(self, box: dict, background: bool = True) -> None:
        if box["taken"] or box is not self._pass:  # adopted already (a headless caller waited for it)
            return
        box["taken"] = True
        self._pass = None
        self._worker = None
        self._computing = False
        engine, seen = box["engine"], box["seen"]
        if self._closed:
            if engine is not None:
                engine.close()
            return
        if engine is None or seen != self._changes:  # edited meanwhile, or failed: again, here
            if engine is not None:
                engine.close()
                if background:
                    self.attach_engine()
                    return
            self.engine = ShapeEngine(self.graph)
        else:
            engine.rebind(self.graph)
            self.engine = engine
        self.computing.emit(False)
        if background:
            self.update_shapes()
        else:
            self._update_now()

    def update_shapes(self) -> None:
        """Output shapes now (fast); parameter counts and build checks when idle."""
        if self.engine is None:
            return
        self.engine.update_shapes()
        self.shapes_updated.emit(self.engine.take_changes())
        self._build_timer.start()

    def _update_builds(self) -> None:
        if self.engine is None:
            return
        self.engine.update()
        self.flush_changes()

    def flush_changes(self) -> None:
        """Announces results that changed since the last announcement, if any.

        Whatever brought the engine up to date (a panel reading the totals updates
        it too), its changes reach the views here, once.
        """
        changes = self.engine.take_changes() if self.engine is not None else {}
        if changes:
            self.shapes_updated.emit(changes)

    def engine_for(self, graph: ModelGraph) -> ShapeEngine | None:
        """The shape engine of the model or of a sub-model's graph (None before Keras).

        The model's engine owns its sub-models' engines: one set of results.
        """
        if self.engine is None:
            return None
        return self.engine.engine_for(graph)

    def result(self, node_id: str, graph: ModelGraph | None = None) -> NodeResult | None:
        """What shape inference last said about a node; None until known."""
        engine = self.engine_for(graph if graph is not None else self.graph)
        return engine.peek(node_id) if engine is not None else None

    def close(self) -> None:
        self._closed = True
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        for graph in self._followed.values():
            graph.changed.disconnect(self._relay)
        self._followed.clear()
        self.undo_stack.clear()
