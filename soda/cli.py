"""The ``soda`` console command: ``soda train ...``, ``soda eval ...``, ``soda data ...``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmds = {"train": "soda.train", "eval": "soda.eval.__main__", "data": "soda.data.__main__"}
    if not argv or argv[0] not in cmds:
        print("usage: soda {train,eval,data} [args...]   (each takes --help)", file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(cmds[argv[0]]).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
