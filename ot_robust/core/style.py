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


#: one colour per method, the same in every figure, keyed by the papers' names (a profile's ``label``); colorblind-safe
#: (seaborn "colorblind" order, then "dark"). Names not listed get a stable colour from their text.
METHOD_COLORS = {
    "Standard": "#949494", "Madry": "#0173b2", "PGD-AT": "#0173b2", "TRADES": "#de8f05", "Proposed": "#029e73",
    "Feature Scattering": "#029e73", "FS": "#029e73", "ALP": "#ca9161", "MART": "#fbafe4",
    "Random-targeted AT": "#56b4e9", "GOT-PGD-S": "#d55e00", "GOT-PGD-LM": "#cc78bc", "GOT-TRADES-S": "#ece133",
    "GOT-TRADES-LM": "#8c0800", "OTJR": "#a23582", "SW": "#006374", "SAT": "#b8850a", "Random JR": "#3c3c3c",
    "Optimal JR": "#001c7f", "SAT + JR": "#12711c",
}
_EXTRA = ["#023eff", "#ff7c00", "#1ac938", "#e8000b", "#8b2be2", "#9f4800", "#f14cc1", "#a3a3a3", "#00d7ff"]


def method_color(label: str) -> str:
    """The colour of method ``label`` in every figure (:data:`METHOD_COLORS`; an unlisted name gets a colour fixed
    by its text, the same in every run). A label such as ``"Madry (seed 1)"`` takes its method's colour."""
    if label in METHOD_COLORS:
        return METHOD_COLORS[label]
    base = next((k for k in sorted(METHOD_COLORS, key=len, reverse=True) if label.startswith(k + " ")), None)
    if base is not None:
        return METHOD_COLORS[base]
    import zlib

    return _EXTRA[zlib.crc32(label.encode()) % len(_EXTRA)]


def legend_outside(ax, **kw) -> None:
    """The legend to the right of ``ax``, where it cannot cover a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, **kw)


def integer_ticks(axis) -> None:
    """Integer tick marks only (PGD steps, epochs, indices): ``integer_ticks(ax.xaxis)``."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))
