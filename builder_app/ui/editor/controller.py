"""The editor controller: the one door every editing gesture goes through.

Widgets (the canvas, the view, the inspector, the window's menus) never build
operations and never push them: they call a method here with what the user did
(the graph of their tab, the payload dropped, the wire released, the value
typed). The controller asks :mod:`builder_app.core.editing` and
:mod:`builder_app.core.ops` for the operation, pushes it on the document's undo
stack as one step, and answers with :class:`Applied` or a typed
:class:`Refusal`, which it also announces on :attr:`EditorController.refused`
for the status bar. Tests drive the same methods without a window.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore

from builder_app.core import display, editing, ops
from builder_app.core.clipboard import paste_ops
from builder_app.core.graph import (
    MISSING,
    CanvasBlock,
    Edge,
    GraphError,
    GroupingError,
    ModelGraph,
    PortRef,
    check_layer_name,
    snake_case,
)
from builder_app.core.quick_fixes import QuickFix, quick_fixes

if TYPE_CHECKING:
    from builder_app.ui.editor.document import Document


@dataclass(frozen=True)
class Notice:
    """Something a done gesture did that the user should hear of, for the status bar.

    ``outputs`` are the nodes it made model outputs by accident (see
    :func:`editing.new_outputs`): the window offers to undo, or to keep them as
    explicit outputs (:meth:`EditorController.keep_outputs`).
    """

    message: str
    graph: ModelGraph
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Applied:
    """The gesture is done (one undo step); ``nodes`` are the nodes it added, if any."""

    nodes: tuple[str, ...] = ()
    notice: Notice | None = None

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True)
class Refusal:
    """The gesture was refused and nothing changed; ``error`` says why (its class, the kind of reason)."""

    error: GraphError

    def __bool__(self) -> bool:
        return False

    @property
    def message(self) -> str:
        return str(self.error)


Outcome = Applied | Refusal


class EditorController(QtCore.QObject):
    """Turns gestures into undoable operations on a :class:`Document` (each document has one).

    Every method takes the graph the gesture happened in (the model or one
    sub-model's graph, as shown in the current tab).

    Signals:
        refused(Refusal): a gesture was refused.
        noticed(Notice): a gesture was done, with something to say (also on :attr:`Applied.notice`).
    """

    refused = QtCore.Signal(object)
    noticed = QtCore.Signal(object)

    def __init__(self, document: Document, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.document = document

    # ------------------------------------------------------------ plumbing
    def _push(
        self,
        graph: ModelGraph,
        build: Callable[[], ops.Op | None],
        text: str,
        merge_key: Hashable | None = None,
        nodes: Callable[[ops.Op], Iterable[str]] | None = None,
    ) -> Outcome:
        try:
            op = build()
            if op is None:
                return Applied()
            self.document.push(op, text, merge_key=merge_key, graph=graph)
        except GraphError as error:
            return self.refuse(error)
        return Applied(tuple(nodes(op)) if nodes is not None else ())

    def refuse(self, error: GraphError) -> Refusal:
        """Announces a refusal (also for gestures refused before any operation is built)."""
        refusal = Refusal(error)
        self.refused.emit(refusal)
        return refusal

    def _engine(self, graph: ModelGraph):
        return self.document.engine_for(graph)

    def _push_watching(
        self,
        graph: ModelGraph,
        build: Callable[[], ops.Op | None],
        text: str,
        nodes: Callable[[ops.Op], Iterable[str]] | None = None,
        note: str | None = None,
    ) -> Outcome:
        """Pushes like :meth:`_push`, then says what the edit made a model output by accident.

        ``note`` is said in any case (a reason the edit did less than asked).
        """
        before = editing.implicit_outputs(graph)
        outcome = self._push(graph, build, text, nodes=nodes)
        if not outcome:
            return outcome
        accidental = editing.new_outputs(before, graph)
        said = [note] if note else []
        names = ", ".join(f"'{graph.label(n)}'" for n in accidental)
        if accidental:
            said.append(f"{names} {'is' if len(accidental) == 1 else 'are'} now a model output; was that meant?")
        if not said:
            return outcome
        notice = Notice("; ".join(said), graph, tuple(accidental))
        self.noticed.emit(notice)
        return Applied(outcome.nodes, notice)

    # ------------------------------------------------------------ adding
    def insert(
        self,
        graph: ModelGraph,
        payload: str,
        position: tuple[float, float],
        source: str | None = None,
        edge: Edge | None = None,
    ) -> Outcome:
        """Adds a palette entry (a layer, an Input or a block) at ``position``; one undo step.

        With ``edge`` (dropped onto a wire) the entry is spliced into that wire at
        ``position`` (:func:`editing.splice_ops`). With ``source`` it is spliced in
        after that node, beside it, taking over what its first output fed
        (:func:`editing.splice_after_ops`; ``position`` is not used).
        """
        try:
            if edge is not None:
                op = editing.splice_ops(graph, payload, edge, position)
                text = op.label
            elif source is not None and source in graph.nodes:
                op = editing.splice_after_ops(graph, payload, source)
                text = op.label
            else:
                op, text, _ = editing.palette_ops(graph, payload, position)
        except GraphError as error:
            return self.refuse(error)
        added = editing.added_node_ids(op)
        return self._push_watching(graph, lambda: op, text, nodes=lambda _: added)

    def insert_block_as_submodel(
        self, graph: ModelGraph, payload: str, position: tuple[float, float], source: str
    ) -> Outcome:
        """Inserts a block wired to ``source`` and groups it into one sub-model: one undo step.

        Returns the sub-model's call as the added node.
        """
        try:
            insert, _, added = editing.palette_ops(graph, payload, position, source)
            name = editing.block_submodel_name(graph, payload)
            # The group is built on the graph as it is with the block in it; the
            # block comes out again at once, and both go on the stack as one step.
            inverse = graph.apply(insert)
            try:
                group = editing.group_ops(graph, self._engine(graph), added, name=name)
            finally:
                graph.apply(inverse)
        except GraphError as error:
            return self.refuse(error)
        text = f"Add {payload.partition(':')[2]} as a sub-model"
        outcome = self._push(graph, lambda: ops.Batch([insert, group], text), text)
        return Applied(tuple(graph.nodes_of_layer(name))) if outcome else outcome

    def paste(self, graph: ModelGraph, data: Any, offset: tuple[float, float] = (40.0, 40.0)) -> Outcome:
        """Pastes copied layers (plain JSON, checked like a project file)."""
        try:
            batch, new_ids = paste_ops(graph, data, offset)
        except GraphError as error:
            return self.refuse(error)
        return self._push(graph, lambda: batch, "Paste", nodes=lambda _: new_ids)

    def call_again(self, graph: ModelGraph, node_id: str, position: tuple[float, float] | None = None) -> Outcome:
        """A second call of a node's layer (shared weights)."""
        return self._push(
            graph, lambda: ops.call_again(graph, node_id, position), "Call again", nodes=lambda op: [op.node.id]
        )

    # ------------------------------------------------------------ wiring
    def wire_problem(self, graph: ModelGraph, edge: Edge, detached: Edge | None = None) -> GraphError | None:
        """Why dropping ``edge`` (after picking up ``detached``) would be refused, or None. Changes nothing."""
        return ops.rewire_problem(graph, edge, detached)

    def rewire(self, graph: ModelGraph, edge: Edge | None, detached: Edge | None = None) -> Outcome:
        """Drops a wire: connects ``edge`` (replacing what its input held), removing ``detached``."""
        return self._push_watching(
            graph, lambda: ops.rewire(graph, edge, detached), "Connect" if edge is not None else "Disconnect"
        )

    def connect(self, graph: ModelGraph, src: str, src_port: int, dst: str, dst_port: int) -> Outcome:
        return self.rewire(graph, Edge(src, src_port, dst, dst_port))

    # ------------------------------------------------------------ removing, moving
    def delete(self, graph: ModelGraph, node_ids: Iterable[str], edges: Iterable[Edge] = ()) -> Outcome:
        """Removes nodes (and their wires) and wires, as one step.

        A single node (with none but its own wires selected) goes through
        :func:`editing.delete_reconnect_ops`: a middle node's source is wired on to
        its consumers, and the notice says which were left unconnected and why.
        """
        node_ids, edges = list(node_ids), list(edges)
        if len(node_ids) == 1 and all(node_ids[0] in (e.src, e.dst) for e in edges):
            node_id = node_ids[0]
            try:
                batch, reason = editing.delete_reconnect_ops(graph, self._engine(graph), node_id)
            except GraphError as error:
                return self.refuse(error)
            note = f"'{graph.label(node_id)}' deleted; {reason}" if reason else None
            return self._push_watching(graph, lambda: batch, batch.label, note=note)
        batch = editing.delete_ops(graph, node_ids, edges)
        if batch is None:
            return Applied()
        return self._push_watching(graph, lambda: batch, batch.label)

    def move(self, graph: ModelGraph, positions: Mapping[str, tuple[float, float]]) -> Outcome:
        """Moves nodes (a drag of the selection is one step)."""
        batch = editing.move_ops(graph, positions)
        if batch is None:
            return Applied()
        return self._push(graph, lambda: batch, batch.label)

    def layout(
        self,
        graph: ModelGraph,
        node_ids: Iterable[str] | None = None,
        sizes: Mapping[str, tuple[float, float]] | None = None,
    ) -> Outcome:
        """Lays the graph out automatically (one step); ``sizes``: the boxes as drawn."""
        return self._push(graph, lambda: editing.layout_ops(graph, node_ids, sizes=sizes), "Layout")

    def set_direction(self, graph: ModelGraph, direction: str) -> Outcome:
        """Draws the graph top to bottom ("TB") or left to right ("LR"), laid out again (one step)."""
        return self._push(graph, lambda: display.direction_ops(graph, direction), "Layout direction")

    def set_collapsed(self, graph: ModelGraph, names: Iterable[str], collapsed: bool) -> Outcome:
        """Collapses or expands display blocks and lays the drawing out again (one step)."""
        names = list(names)
        text = ("Collapse " if collapsed else "Expand ") + (f"'{names[0]}'" if len(names) == 1 else f"{len(names)} blocks")
        return self._push(graph, lambda: display.collapse_ops(graph, names, collapsed), text)

    def set_blocks(self, graph: ModelGraph, blocks: Iterable[CanvasBlock]) -> Outcome:
        """Replaces the display blocks (say, proposed from the layer names) and lays out (one step)."""
        return self._push(graph, lambda: display.blocks_ops(graph, list(blocks)), "Display blocks")

    # ------------------------------------------------------------ layers
    def set_param(self, graph: ModelGraph, layer: str, key: str, value: Any, *, merge: bool = False) -> Outcome:
        """Sets one parameter of a layer; consecutive ``merge`` edits of one field are one step.

        ``MISSING`` removes the parameter (Keras's default applies).
        """
        merge_key = (id(graph), layer, key) if merge else None
        return self._push(graph, lambda: ops.SetParam(layer, key, value), f"Set {key} of {layer}", merge_key)

    def set_params(self, graph: ModelGraph, values: Mapping[tuple[str, str], Any], text: str) -> Outcome:
        """Sets several parameters (``{(layer, key): value}``) as one undo step (a sweep's best trial)."""
        return self._push(
            graph, lambda: ops.Batch([ops.SetParam(layer, key, v) for (layer, key), v in values.items()], text), text
        )

    def reset_param(self, graph: ModelGraph, layer: str, key: str) -> Outcome:
        return self.set_param(graph, layer, key, MISSING)

    def rename(self, graph: ModelGraph, old: str, new: str) -> Outcome:
        return self._push(graph, lambda: ops.RenameLayer(old, new), f"Rename {old} to {new}")

    def unshare(self, graph: ModelGraph, node_id: str) -> Outcome:
        return self._push(graph, lambda: ops.unshare(graph, node_id), "Unshare")

    # ------------------------------------------------------------ sub-models, model I/O
    def submodel_name(self, graph: ModelGraph, node_ids: Iterable[str]) -> str:
        """A free, sensible name for grouping ``node_ids``: what their layer names share, else ``submodel``.

        ``conv2_block1_1_conv`` and ``conv2_block1_2_conv`` give ``conv2_block1``; a
        shared prefix that is a layer class's default name (``dense`` of ``dense``,
        ``dense_1``) or an existing layer's name says nothing of the group and is not used.
        """
        ids = [n for n in node_ids if n in graph.nodes]
        names = [graph.node(n).layer for n in ids]
        prefix = os.path.commonprefix(names).rstrip("_-. ") if len(set(names)) > 1 else ""
        stems = {snake_case(graph.layer_of(n).class_name) for n in ids}
        useful = len(prefix) >= 2 and prefix not in stems and prefix not in graph.layers
        base = prefix if useful and check_layer_name(prefix) is None else "submodel"
        return graph.unique_layer_name(base)

    def submodel_name_problem(self, graph: ModelGraph, name: str) -> str | None:
        """Why ``name`` cannot name a new sub-model of ``graph`` (a Keras layer name, free in it), or None."""
        problem = check_layer_name(name)
        if problem is not None:
            return problem
        if name in graph.layers:
            return f"a layer named '{name}' already exists in this model"
        return None

    def group(self, graph: ModelGraph, node_ids: list[str], name: str | None = None) -> Outcome:
        """Groups the selection into one call of a new sub-model (named ``name``, see :meth:`submodel_name`)."""
        return self._push(
            graph, lambda: editing.group_ops(graph, self._engine(graph), node_ids, name=name), "Group as sub-model"
        )

    def ungroup(self, graph: ModelGraph, node_id: str) -> Outcome:
        return self._push(graph, lambda: ops.ungroup(graph, node_id), "Ungroup")

    def extract(self, graph: ModelGraph, node_ids: list[str], name: str) -> ModelGraph | Refusal:
        """The selection as a model of its own (the graph is not changed)."""
        if not node_ids:
            return self.refuse(GroupingError("select the layers to extract first"))
        try:
            return editing.extracted_model(graph, self._engine(graph), node_ids, name)
        except GraphError as error:
            return self.refuse(error)

    def set_outputs(self, graph: ModelGraph, node_ids: Iterable[str]) -> Outcome:
        """Makes the selected nodes' tensors the model's outputs."""
        return self._push(graph, lambda: editing.outputs_op(graph, self._engine(graph), node_ids), "Set model outputs")

    def set_io(self, graph: ModelGraph, inputs: list[str], outputs: list[PortRef]) -> Outcome:
        return self._push(graph, lambda: ops.SetModelIO(inputs, outputs), "Set model inputs and outputs")

    def keep_outputs(self, graph: ModelGraph) -> Outcome:
        """Makes the model's outputs as they are now explicit (the answer to an accidental-output notice)."""
        return self._push(
            graph,
            lambda: editing.outputs_op(graph, self._engine(graph), sorted(editing.implicit_outputs(graph))),
            "Keep model outputs",
        )

    # ------------------------------------------------------------ quick fixes
    def quick_fixes(self, graph: ModelGraph, node_id: str) -> list[QuickFix]:
        """The verified one-click fixes of a node's shape error (empty without one, or before Keras).

        Checked on a scratch copy of what each fix affects; nothing changes here.
        """
        engine = self._engine(graph)
        if engine is None or node_id not in graph.nodes:
            return []
        return quick_fixes(graph, engine, node_id)

    def apply_fix(self, graph: ModelGraph, fix: QuickFix) -> Outcome:
        """Applies a quick fix as one undo step named by its title."""
        steps = fix.op.ops if isinstance(fix.op, ops.Batch) else [fix.op]
        added = [step.node.id for step in steps if isinstance(step, ops.AddNode)]
        return self._push(graph, lambda: fix.op, fix.title, nodes=lambda _: added)

    # ------------------------------------------------------------ history
    def undo(self) -> None:
        self.document.undo_stack.undo()

    def redo(self) -> None:
        self.document.undo_stack.redo()
