"""One plotting style for every figure of the project: :func:`use_style`, :func:`figure`, :func:`save_figure`.

* :func:`use_style` - seaborn ``whitegrid`` + ``colorblind`` palette + :data:`STYLE` rc settings (:func:`figure`
  applies it for you).
* :func:`figure` - ``plt.subplots`` in the project style.
* :func:`save_figure` - write ``<fig_dir>/<name>.png`` and ``.pdf`` atomically (no timestamps in the PDF), return
  both paths; every method name in the figure's text is first given its one figure name (:func:`figure_name`).
"""

from __future__ import annotations

import io
import re
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
    rename_methods(fig)
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


#: the papers' other names for a method -> the one name every figure gives it (the FS paper calls PGD-AT "Madry" and
#: itself "Proposed"; the tables keep each paper's own row names beside the paper's numbers)
FIGURE_NAMES = {"Madry": "PGD-AT", "Proposed": "FS", "Feature Scattering": "FS"}
_NAME_RE = re.compile(r"\b(" + "|".join(map(re.escape, FIGURE_NAMES)) + r")\b")


def figure_name(text: str) -> str:
    """``text`` with each method name of :data:`FIGURE_NAMES` replaced by its figure name, as a whole word:
    ``"Madry (seed 1)"`` -> ``"PGD-AT (seed 1)"``, ``"FS beats Madry under PGD-20"`` -> ``"FS beats PGD-AT ..."``."""
    return _NAME_RE.sub(lambda m: FIGURE_NAMES[m.group(1)], text)


def _texts(fig):
    for ax in fig.axes:
        yield from (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts)
        if ax.get_legend() is not None:
            yield from ax.get_legend().get_texts()
    for leg in fig.legends:
        yield from leg.get_texts()
    yield from fig.texts
    if getattr(fig, "_suptitle", None) is not None:
        yield fig._suptitle


def rename_methods(fig) -> None:
    """Give every method name in ``fig``'s titles, axis labels, legends, text and fixed tick labels its figure name
    (:func:`figure_name`), in place; :func:`save_figure` calls it, so every saved figure names each method one way."""
    for t in _texts(fig):
        new = figure_name(t.get_text())
        if new != t.get_text():
            t.set_text(new)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            old = [t.get_text() for t in axis.get_majorticklabels()]
            new = [figure_name(s) for s in old]
            if new != old:  # the ticks stay where they are, with the renamed labels
                axis.set_ticks(axis.get_majorticklocs(), new)


#: one colour per method, the same in every figure, keyed by the papers' names (a profile's ``label``); colorblind-safe
#: (seaborn "colorblind" order, then "dark"). Names not listed get a stable colour from their text.
METHOD_COLORS = {
    "Standard": "#949494", "Madry": "#0173b2", "PGD-AT": "#0173b2", "TRADES": "#de8f05", "Proposed": "#029e73",
    "Feature Scattering": "#029e73", "FS": "#029e73", "ALP": "#ca9161", "MART": "#fbafe4",
    "Random-targeted AT": "#56b4e9", "GOT-PGD-S": "#d55e00", "GOT-PGD-LM": "#cc78bc", "GOT-TRADES-S": "#7f7f00",
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


#: marker shapes, one per method (in :data:`METHOD_COLORS` order), so that lines stay apart in a grayscale print
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def method_style(label: str) -> dict:
    """``plot`` keywords for method ``label``: its colour (:func:`method_color`) and its own marker (the same in every
    figure; an open marker so that a line drawn on top of another leaves it visible), e.g.
    ``ax.plot(x, y, label=label, **method_style(label))``."""
    import zlib

    name = figure_name(label)
    names = list(dict.fromkeys(figure_name(k) for k in METHOD_COLORS))
    base = next((k for k in sorted(names, key=len, reverse=True) if name == k or name.startswith(k + " ")), None)
    i = names.index(base) if base is not None else zlib.crc32(name.encode())
    return {"color": method_color(label), "marker": MARKERS[i % len(MARKERS)], "markerfacecolor": "none",
            "markeredgewidth": 1.2}


def legend_outside(ax, **kw) -> None:
    """The legend to the right of ``ax``, where it cannot cover a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, **kw)


def integer_ticks(axis) -> None:
    """Integer tick marks only (PGD steps, epochs, indices): ``integer_ticks(ax.xaxis)``."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))
