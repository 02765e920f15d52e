"""What ``builder-app import`` says when weights were left out: which layers kept theirs.

An import that leaves weights out still writes the project (the graph is worth
having), but a user must not mistake it for the trained model: the command says so
in one prominent last line. It still exits 0: the project was written, and scripts that
import a model with a custom layer (whose code comes later) must not read it as a failure.
"""

from __future__ import annotations

from builder_app.core.weights_file import walk_layers

#: The words every importer warning about left-out weights holds.
DROPPED_MARK = "weights were not imported"
_NAMED = 8


def dropped_weights_line(result) -> str | None:
    """One line naming the layers that kept their weights, when some were left out (else None)."""
    dropped = [w for w in result.warnings if DROPPED_MARK in w]
    if not dropped:
        return None
    kept = [label for label, layer in walk_layers(result.project.graph) if layer.weights]
    what = f"{len(dropped)} warning{'s' if len(dropped) > 1 else ''} above"
    if not kept:
        return f"WEIGHTS LEFT OUT ({what}): no layer kept its weights; the project starts from the initializers"
    more = f" and {len(kept) - _NAMED} more" if len(kept) > _NAMED else ""
    names = ", ".join(f"'{label}'" for label in kept[:_NAMED])
    return f"WEIGHTS LEFT OUT ({what}): only {len(kept)} layer{'s' if len(kept) > 1 else ''} kept theirs: {names}{more}"
