"""One plotting style for every figure of the project: :func:`use_style`, :func:`figure`, :func:`save_figure`.

* :func:`use_style` - seaborn ``whitegrid`` + ``colorblind`` palette + :data:`STYLE` rc settings (:func:`figure`
  applies it for you).
* :func:`figure` - ``plt.subplots`` in the project style.
* :func:`save_figure` - write ``<fig_dir>/<name>.png`` and ``.pdf`` atomically (no timestamps in the PDF), return
  both paths.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt

STYLE = {"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight", "font.size": 9, "axes.titlesize": 10,
         "axes.labelsize": 9, "legend.fontsize": 8, "lines.linewidth": 1.6, "lines.markersize": 4,
         "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42}
_styled = False


def use_style() -> None:
    """Apply the project style: seaborn ``whitegrid`` + ``colorblind`` palette + :data:`STYLE` rc settings."""
    global _styled
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", rc=STYLE)
    _styled = True


def figure(ncols: int = 1, nrows: int = 1, width: float = 3.4, height: float = 2.6, **kw):
    """``plt.subplots`` in the project style, panels of ``width`` x ``height`` inches; returns ``(fig, axes)``."""
    if not _styled:
        use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def save_figure(fig, name: str, fig_dir: str | Path, close: bool = True) -> list[Path]:
    """Write ``fig`` as ``<fig_dir>/<name>.png`` and ``<fig_dir>/<name>.pdf`` (atomically); returns the two paths.

    Raises:
        ValueError: if ``name`` is empty or contains a path separator.
    """
    from .utils import atomic_write_bytes

    if not name or "/" in name or "\\" in name:
        raise ValueError(f"figure name {name!r} must be a plain file stem (no '/')")
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        p = Path(fig_dir) / f"{name}.{ext}"
        atomic_write_bytes(p, buf.getvalue())
        paths.append(p)
    if close:
        plt.close(fig)
    return paths
