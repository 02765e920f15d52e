"""``python -m benchmarks``: run every benchmark and print one table.

Each module ``benchmarks/bench_*.py`` defines ``NAME`` and ``run() -> [(measure, value)]``;
values are ratios against baselines measured in the same run.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    wanted = set(argv)
    here = Path(__file__).resolve().parent
    modules = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    names = [name.removeprefix("bench_") for name in modules]
    if wanted & {"-h", "--help"}:
        print(f"usage: python -m benchmarks [NAME ...]  (NAME: {' '.join(names)}; none: all)")
        return 0
    unknown = sorted(wanted - set(names))
    if unknown:
        print(f"benchmarks: no benchmark named {', '.join(unknown)}; names: {' '.join(names)}", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str]] = []
    for name in modules:
        module = importlib.import_module(f"benchmarks.{name}")
        if wanted and module.NAME not in wanted:
            continue
        print(f"running {module.NAME}...", file=sys.stderr, flush=True)
        rows.extend((module.NAME, measure, value) for measure, value in module.run())
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(2)]
    for bench, measure, value in rows:
        print(f"{bench:<{widths[0]}}  {measure:<{widths[1]}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
