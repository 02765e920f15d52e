"""The frozen bundle's entry point (PyInstaller runs this file as ``__main__``).

It does what ``python -m builder_app`` does, plus two things only a frozen program needs:

- ``multiprocessing.freeze_support()`` first: a training run is a ``spawn`` child, which
  starts this same executable with ``--multiprocessing-fork``; PyInstaller's runtime hook
  makes ``freeze_support`` run the child's code there (and the resource tracker's).
- ``builder-app -c CODE ARG...`` runs CODE as ``python -c`` would: in a bundle
  ``sys.executable`` is this program, and ``export --check`` loads each export in a fresh
  ``[sys.executable, "-c", ...]``.
"""

import multiprocessing
import sys


def _run_code(code: str, args: list[str]) -> int:
    sys.argv = ["-c", *args]
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(compile(code, "<string>", "exec"), namespace)  # noqa: S102 - the app's own child code
    return 0


def main() -> int:
    multiprocessing.freeze_support()
    if len(sys.argv) >= 3 and sys.argv[1] == "-c":
        return _run_code(sys.argv[2], sys.argv[3:])
    from builder_app.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
