"""Display blocks proposed from layer names: how an imported model groups for the eye.

Keras applications and most hand-written models name their layers by block:
ResNet50's ``conv2_block1_1_conv`` ... ``conv2_block1_out``, MobileNetV2's
``block_3_expand``, EfficientNet's ``block2b_se_squeeze``, ConvNeXt's
``convnext_tiny_stage_0_block_0_depthwise_conv``, a user's ``encoder_1_conv``.
:func:`propose_blocks` reads those names back into groups of nodes that the canvas
can collapse into one box. A display block changes nothing in the model.

Names are cut at ``_`` and where digits end inside a word (``block1a`` gives
``block1``), and two kinds of prefix are tried:

- *numbered* prefixes, whose last word holds a block number: ``conv2_block1``,
  ``block1a``, ``block_3``, ``stage_0_block_0``. A number standing alone right after
  another number is a layer's index within its block (``conv2_block1_1``), not a
  block. Longer prefixes are tried first, so ``conv2_block1`` wins over ``conv2``.
- then *word* prefixes for what is left, grouped by the first word (``stem_conv``,
  ``stem_bn`` -> ``stem``) and named by the longest prefix all members share.

Keras's automatic names (``dense``, ``dense_1``, ``conv2d_3``: the layer's class in
snake case and a counter) say nothing about blocks: such nodes stay alone.

A block is a weakly connected set of at least ``min_size`` nodes; blocks never
overlap, and collapsing all of them keeps the graph acyclic (the quotient graph,
a networkx DiGraph, is searched for the cycle a candidate would close; the tests
check the result with ``nx.quotient_graph``). Such a candidate is split, in
topological order, into pieces that do not; small pieces are dropped.

Reads a :class:`~builder_app.core.graph.ModelGraph` through its accessors only;
this module never imports Qt or Keras.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from builder_app.core.graph import ModelGraph, PortRef, snake_case

_DIGITS_THEN_LETTERS = re.compile(r"(?<=\d)(?=[A-Za-z])")
_COUNTER = re.compile(r"^(.*?)(?:_\d+)?$")


@dataclass(frozen=True)
class DisplayBlock:
    """A group of nodes the canvas may show as one box.

    Attributes:
        name: The name prefix the nodes share, e.g. ``"conv2_block1"``; a second
            block of one prefix gets ``" (2)"`` and so on.
        nodes: The node ids, in the graph's topological order.
    """

    name: str
    nodes: tuple[str, ...]


def is_automatic_name(layer_name: str, class_name: str) -> bool:
    """Whether Keras made this name up: the class in snake case, maybe with ``_<n>``."""
    base = _COUNTER.match(layer_name)
    return base is not None and base.group(1) == snake_case(class_name)


def numbered_prefixes(name: str) -> list[str]:
    """The prefixes of ``name`` that end in a block number, longest first.

    ``"conv2_block1_1_conv"`` -> ``["conv2_block1", "conv2"]``;
    ``"block2b_se_squeeze"`` -> ``["block2b", "block2"]``; ``"block_3_expand"`` ->
    ``["block_3"]``. The whole name counts too (``"mixed9"``).
    """
    words = name.split("_")
    found: list[str] = []
    for i, word in enumerate(words):
        head = "_".join(words[:i])
        joined = f"{head}_{word}" if head else word
        if word.isdigit():
            # a lone number is a block number after a plain word (block_3, stage_0),
            # and a layer's index after a numbered word (conv2_block1_1)
            if i > 0 and words[i - 1].isalpha():
                found.append(joined)
            continue
        if any(ch.isdigit() for ch in word):
            # inside "block2b": "block2" (digits end) and, when it ends there, the word
            for cut in _DIGITS_THEN_LETTERS.finditer(word):
                part = word[: cut.start()]
                found.append(f"{head}_{part}" if head else part)
            if word[-1].isdigit() or word[-1].isalpha():
                found.append(joined)
    return sorted(set(found), key=lambda p: (-len(p), p))


def _word_group(name: str) -> str | None:
    """The first word of a name of several words (``stem_bn`` -> ``stem``), else None."""
    first, sep, rest = name.partition("_")
    return first if sep and rest and first and not any(ch.isdigit() for ch in first) else None


def _common_prefix(names: Iterable[str]) -> str:
    """The longest run of leading words all names share."""
    split = [n.split("_") for n in names]
    common: list[str] = []
    for words in zip(*split, strict=False):
        if any(w != words[0] for w in words):
            break
        common.append(words[0])
    # a block named like one of its layers reads as that layer: keep a proper prefix
    while common and "_".join(common) in {"_".join(s) for s in split}:
        common.pop()
    return "_".join(common)


class _Grouping:
    """Accepted blocks so far, over the quotient graph that collapsing them gives.

    The quotient graph (networkx) has a node per accepted block and per node in no
    block; it stays acyclic, and its topological ranks bound the search for the
    cycle a candidate would close.
    """

    def __init__(self, graph: ModelGraph) -> None:
        self.order = graph.topological_order()
        self.index = {n: i for i, n in enumerate(self.order)}
        self.quotient = nx.DiGraph()
        self.quotient.add_nodes_from(self.order)
        self.neighbours: dict[str, set[str]] = {n: set() for n in self.order}
        for edge in graph.edges():
            self.quotient.add_edge(edge.src, edge.dst)
            self.neighbours[edge.src].add(edge.dst)
            self.neighbours[edge.dst].add(edge.src)
        self.rank: dict[object, int] = dict(self.index)
        self.slots: list[object | None] = list(self.order)
        self.group_of: dict[str, int] = {}
        self.blocks: list[tuple[str, tuple[str, ...]]] = []

    def acyclic_with(self, nodes: Iterable[str]) -> bool:
        """Whether collapsing ``nodes`` (in no block yet) too leaves the graph acyclic.

        It does unless a path leaves the nodes and comes back: search forwards from
        the nodes' successors outside them, only through quotient nodes ranked
        before the last of them (no later node can reach back).
        """
        inside = set(nodes)
        last = max(self.rank[n] for n in inside)
        todo = [m for n in inside for m in self.quotient.succ[n] if m not in inside]
        seen = set(todo)
        while todo:
            v = todo.pop()
            if self.rank[v] >= last:
                continue
            for m in self.quotient.succ[v]:
                if m in inside:
                    return False
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return True

    def components(self, nodes: Iterable[str]) -> list[list[str]]:
        """Weakly connected pieces of ``nodes``, each in topological order, by first node."""
        left = set(nodes)
        pieces = []
        for start in sorted(left, key=self.index.__getitem__):
            if start not in left:
                continue
            piece, todo = [], [start]
            left.discard(start)
            while todo:
                n = todo.pop()
                piece.append(n)
                for m in self.neighbours[n]:
                    if m in left:
                        left.discard(m)
                        todo.append(m)
            pieces.append(sorted(piece, key=self.index.__getitem__))
        return pieces

    def offer(self, name: str, nodes: Iterable[str], min_size: int) -> None:
        """Accept the connected pieces of ``nodes`` that are big enough and close no cycle."""
        for piece in self.components(n for n in nodes if n not in self.group_of):
            if len(piece) < min_size:
                continue
            if self.acyclic_with(piece):
                self._accept(name, piece)
                continue
            # split in topological order where the next node would close a cycle
            run: list[str] = []
            runs = []
            for n in piece:
                if run and not self.acyclic_with([*run, n]):
                    runs.append(run)
                    run = []
                run.append(n)
            runs.append(run)
            for run in runs:
                for part in self.components(run):
                    if len(part) >= min_size and self.acyclic_with(part):
                        self._accept(name, part)

    def _accept(self, name: str, nodes: list[str]) -> None:
        group = ("block", len(self.blocks))
        self.blocks.append((name, tuple(nodes)))
        inside = set(nodes)
        q = self.quotient
        q.add_node(group)
        preds = [m for n in nodes for m in q.pred[n] if m not in inside]
        for n in nodes:
            self.group_of[n] = len(self.blocks) - 1
            q.add_edges_from((group, m) for m in q.succ[n] if m not in inside)
            q.add_edges_from((m, group) for m in q.pred[n] if m not in inside)
        q.remove_nodes_from(nodes)
        self._reorder(inside, preds, group)

    def _reorder(self, inside: set[str], preds: list[object], group: object) -> None:
        """Keep the ranks a topological order of the quotient after collapsing ``inside``.

        Only the slots between the first and the last collapsed node move: there, the
        nodes that lead into the block come first, then the block, then the rest
        (the block is convex, so nothing it feeds leads back into it).
        """
        low = min(self.rank[n] for n in inside)
        high = max(self.rank[n] for n in inside)
        window = [v for v in self.slots[low : high + 1] if v is not None]
        before: set[object] = set()
        todo = list(preds)
        while todo:
            v = todo.pop()
            if v in before or self.rank[v] <= low:
                continue
            before.add(v)
            todo.extend(self.quotient.pred[v])
        order = [v for v in window if v in before]
        order.append(group)
        order += [v for v in window if v not in before and v not in inside]
        order += [None] * (high + 1 - low - len(order))
        self.slots[low : high + 1] = order
        for n in inside:
            del self.rank[n]
        for i, v in enumerate(order, start=low):
            if v is not None:
                self.rank[v] = i


class _Sandwiches:
    """Runs of automatically named nodes, to take into the block they sit inside.

    MobileNetV3's ``re_lu_3`` between ``expanded_conv_1_expand_bn`` and
    ``expanded_conv_1_depthwise_pad`` belongs to ``expanded_conv_1``: a weakly
    connected run of such nodes joins a block when every node it reads from or
    feeds is in that block.
    """

    def __init__(self, graph: ModelGraph, order: list[str], named: Mapping[str, str]) -> None:
        automatic = [n for n in order if n not in named and not graph.is_input(n)]
        auto = set(automatic)
        self.runs: list[tuple[list[str], set[str]]] = []
        self.runs_next_to: dict[str, list[int]] = {}
        run_of: dict[str, int] = {}
        for start in automatic:
            if start in run_of:
                continue
            run, todo, outside = [], [start], set()
            run_of[start] = len(self.runs)
            while todo:
                n = todo.pop()
                run.append(n)
                near = [ref.node for ref in graph.inputs_of(n).values()]
                near += [e.dst for e in graph.consumers_of(n)]
                for m in near:
                    if m not in auto:
                        outside.add(m)
                    elif m not in run_of:
                        run_of[m] = len(self.runs)
                        todo.append(m)
            for m in sorted(outside):
                self.runs_next_to.setdefault(m, []).append(len(self.runs))
            self.runs.append((run, outside))

    def around(self, nodes: list[str]) -> list[str]:
        """``nodes`` and every run of automatic names wholly inside them."""
        members = set(nodes)
        taken = list(nodes)
        for k in sorted({k for n in nodes for k in self.runs_next_to.get(n, ())}):
            run, outside = self.runs[k]
            if outside and outside <= members:
                taken.extend(run)
        return taken


def propose_blocks(graph: ModelGraph, min_size: int = 3) -> list[DisplayBlock]:
    """Display blocks from the layer names, in topological order of their first nodes.

    Each block is the longest block-numbered name prefix (else the first word) that
    a weakly connected set of at least ``min_size`` nodes shares. Nodes in no block
    (automatic names, lone layers) stay alone. Deterministic: the same graph gives
    the same blocks.

    Raises:
        ValueError: when ``min_size`` is below 2.
    """
    if not isinstance(min_size, int) or min_size < 2:
        raise ValueError(f"display blocks: min_size must be a whole number >= 2, not {min_size!r}")
    grouping = _Grouping(graph)
    named: dict[str, str] = {}
    for node_id in grouping.order:
        layer = graph.layer_of(node_id)
        if not graph.is_input(node_id) and not is_automatic_name(layer.name, layer.class_name):
            named[node_id] = layer.name

    absorb = _Sandwiches(graph, grouping.order, named)
    by_prefix: dict[str, list[str]] = {}
    for node_id, name in named.items():
        for prefix in numbered_prefixes(name):
            by_prefix.setdefault(prefix, []).append(node_id)
    # A prefix that is itself a layer's name ("block1_conv1" of "block1_conv1_bn") names
    # that layer and its helpers, a level below a block: tried after the others.
    layer_names = set(named.values())
    for prefix in sorted(by_prefix, key=lambda p: (p in layer_names, -len(p), p)):
        grouping.offer(prefix, absorb.around(by_prefix[prefix]), min_size)

    by_word: dict[str, list[str]] = {}
    for node_id, name in named.items():
        word = _word_group(name)
        if word is not None and node_id not in grouping.group_of:
            by_word.setdefault(word, []).append(node_id)
    for word in sorted(by_word):
        before = len(grouping.blocks)
        grouping.offer(word, absorb.around(by_word[word]), min_size)
        for k in range(before, len(grouping.blocks)):
            _, nodes = grouping.blocks[k]
            grouping.blocks[k] = (
                _common_prefix(named[n] for n in nodes if n in named) or word,
                nodes,
            )

    ordered = sorted(grouping.blocks, key=lambda b: grouping.index[b[1][0]])
    seen: dict[str, int] = {}
    blocks = []
    for name, nodes in ordered:
        seen[name] = seen.get(name, 0) + 1
        blocks.append(DisplayBlock(name if seen[name] == 1 else f"{name} ({seen[name]})", nodes))
    return blocks


def block_boundary(graph: ModelGraph, nodes: Iterable[str]) -> tuple[list[PortRef], list[PortRef]]:
    """The tensors entering and leaving a group of nodes: the ports of its collapsed box.

    Returns:
        ``(inputs, outputs)``. ``inputs``: each tensor made outside the group and
        read inside it, once, in the order the group first reads them (nodes in
        topological order, then input port). ``outputs``: each tensor made inside
        the group and read outside it or being a model output, in topological order
        of the node making it, then output port.

    Raises:
        ValueError: when a node id is not in the graph.
    """
    members = set(nodes)
    missing = sorted(n for n in members if n not in graph.nodes)
    if missing:
        raise ValueError(f"display block: there is no node '{missing[0]}' in the graph")
    # The graph's topological index: a block costs its own size, not the graph's.
    index = graph.topological_index()
    order = sorted(members, key=index.__getitem__)
    inputs: dict[PortRef, None] = {}
    for n in order:
        sources: Mapping[int, PortRef] = graph.inputs_of(n)
        for port in sorted(sources):
            if sources[port].node not in members:
                inputs.setdefault(sources[port])
    leaving: set[PortRef] = {
        PortRef(e.src, e.src_port)
        for n in order
        for e in graph.consumers_of(n)
        if e.dst not in members
    }
    explicit = graph.explicit_outputs()
    if explicit:
        leaving |= {ref for ref in explicit if ref.node in members}
    else:  # as graph.model_outputs(): every node that feeds nothing, read from the block alone
        leaving |= {PortRef(n, 0) for n in order if not graph.consumers_of(n) and not graph.is_input(n)}
    outputs = sorted(leaving, key=lambda ref: (index[ref.node], ref.port))
    return list(inputs), outputs
