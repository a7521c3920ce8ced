"""Jupyter server settings of `make lab` (``jupyter lab --config scripts/jupyter_server_config.py``): the committed
notebooks open, run and change in JupyterLab as usual, but saving over one is refused with a one-line message (use
File > Save Notebook As...), so running a notebook in Lab leaves every tracked file unchanged. A notebook
is committed when git tracks it; new notebooks and copies save normally. The hook raises tornado's HTTPError, the
one exception with which the server rejects a save (any other is logged and the save goes on); autosave is off as
well (scripts/lab_overrides.json), so Run All raises no save dialog.
"""

import subprocess
from pathlib import Path

from tornado.web import HTTPError


def is_tracked(path: Path) -> bool:
    """Whether git tracks ``path`` (False outside a git checkout or without git)."""
    try:
        return subprocess.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch", path.name],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def refuse_committed_notebooks(model, path, contents_manager, **kwargs):
    """``ContentsManager.pre_save_hook``: refuse to save a notebook over a git-tracked ``.ipynb``."""
    if model.get("type") != "notebook":
        return
    full = Path(contents_manager.root_dir, path.lstrip("/"))
    if full.is_file() and is_tracked(full.resolve()):
        raise HTTPError(403, f"{path} is a committed notebook of the project and stays as committed: keep your run "
                             f"with File > Save Notebook As... (e.g. {full.stem}-mine.ipynb)")


if "c" in globals():  # loaded by Jupyter as a config file
    c.ContentsManager.pre_save_hook = refuse_committed_notebooks  # noqa: F821
