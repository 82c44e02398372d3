"""Executes notebooks top to bottom with nbclient and fails on the first cell
that fails, naming the notebook and the cell. Executed copies go to --out;
the committed notebooks are not touched unless --in-place is given.

    python notebooks/execute.py [--out DIR | --in-place] NOTEBOOK...
"""

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--in-place", action="store_true")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    for path in args.notebooks:
        started = time.time()
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(notebook, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        try:
            client.execute()
        except CellExecutionError as error:
            print(f"{path}: a cell failed\n{error}", file=sys.stderr)
            return 1
        target = path if args.in_place else (args.out / path.name if args.out else None)
        if target:
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, target)
        print(f"{path}: every cell ran ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
