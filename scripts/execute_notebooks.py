"""Execute the notebooks that are committed with their outputs, in place (``make notebook-outputs``).

These notebooks read only committed results (``results/study-fashion``, ``results/study-mnist``, ``results/``
for the claims) and write only scratch files under ``runs/``, so they run on a fresh clone in seconds; their
committed outputs render on GitHub, and ``tests/test_notebook_outputs.py`` re-executes them with
``pytest --nbval-lax`` (cells tagged ``nbval-check-output`` must give the committed output). Run this after
committing a study chunk (the tables change) and after regenerating these notebooks (``make notebooks`` keeps the
outputs of a notebook whose cells did not change, and writes a changed one without outputs).

    python scripts/execute_notebooks.py           # all of OUTPUT_NOTEBOOKS and RENDERED_NOTEBOOKS
    python scripts/execute_notebooks.py --checked # OUTPUT_NOTEBOOKS only (the ones nbval checks; make study-sync)
    python scripts/execute_notebooks.py --check   # exit 1 if one has no outputs
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
#: notebooks committed with outputs (each runs in seconds from committed results)
OUTPUT_NOTEBOOKS = ("30_tables_fs", "31_tables_got", "32_tables_otjr", "40_figures_fs", "41_figures_got",
                    "42_figures_otjr", "50_claims")
#: also committed with outputs (so they render on GitHub), executed by this script but not re-executed by nbval:
#: the analysis figures from the study's committed seed-0 models (35-100 s each here; the smoke profile already
#: runs every one of them in CI)
RENDERED_NOTEBOOKS = ("43_figures_tsne", "44_figures_landscape", "45_figures_activations",
                      "46_figures_decision_cells", "47_figures_toy")


def has_outputs(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def execute(path: Path, timeout: int = 600) -> None:
    """Run ``path`` top to bottom in a fresh kernel from the project root and write it back with its outputs."""
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["TQDM_DISABLE"] = "1"  # no progress bars in committed outputs (tqdm reads TQDM_* defaults)
    sockets = tempfile.mkdtemp(prefix="ot-robust-kernel-")  # IPC, as ot_robust.study.jupyter_kernel: no TCP warning
    km = AsyncKernelManager(kernel_name=nb.metadata["kernelspec"]["name"], transport="ipc",
                            ip=str(Path(sockets) / "kernel"))
    try:
        NotebookClient(nb, km=km, timeout=timeout, record_timing=False,
                       resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    path.write_text(path.read_text().rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a notebook of OUTPUT_NOTEBOOKS has no outputs")
    ap.add_argument("--checked", action="store_true",
                    help="only OUTPUT_NOTEBOOKS, the ones nbval re-executes (seconds; what a study chunk changes)")
    ap.add_argument("names", nargs="*", help="notebook stems (default: OUTPUT_NOTEBOOKS + RENDERED_NOTEBOOKS)")
    args = ap.parse_args(argv)
    default = OUTPUT_NOTEBOOKS if args.checked else OUTPUT_NOTEBOOKS + RENDERED_NOTEBOOKS
    paths = [ROOT / "notebooks" / f"{n}.ipynb" for n in (args.names or default)]
    if args.check:
        bare = [str(p) for p in paths if not has_outputs(p)]
        if bare:
            print("notebooks without outputs (run python scripts/execute_notebooks.py):", *bare, sep="\n  ")
        return 1 if bare else 0
    for p in paths:
        execute(p)
        print(f"executed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
