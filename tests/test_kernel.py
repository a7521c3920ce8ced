"""The kept kernel (ot_robust.study.jupyter_kernel): papermill steps share one kernel per process, each step starts from
a clean namespace, and a failed step or a changed environment gets a fresh kernel."""

import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ot_robust.study import jupyter_kernel as kernel


def _nb(path, *cells):
    params = new_code_cell("tag = None", metadata={"tags": ["parameters"]})
    nb = new_notebook(cells=[params] + [new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _run(tmp_path, name, *cells, tag="x"):
    nb = _nb(tmp_path / f"{name}.ipynb", *cells)
    out = tmp_path / f"{name}.out.ipynb"
    kernel.execute_notebook(nb, out, {"tag": tag}, cwd=tmp_path)
    return nbformat.read(out, as_version=4)


def _stdout(nb):
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.fixture(autouse=True)
def _clean():
    kernel.shutdown()
    yield
    kernel.shutdown()


def test_one_kernel_clean_namespace_and_counts(tmp_path):
    report = "import os, json; print(json.dumps({'pid': os.getpid(), 'tag': tag, 'leak': 'secret' in dir()}))"
    a = _run(tmp_path, "a", "secret = 42", report, tag="a")
    b = _run(tmp_path, "b", report, tag="b")
    ra, rb = (json.loads(_stdout(nb).strip().splitlines()[-1]) for nb in (a, b))
    assert ra["pid"] == rb["pid"]  # the same kernel process ran both steps
    assert (ra["tag"], rb["tag"]) == ("a", "b") and ra["leak"] and not rb["leak"]  # a's names are gone in b
    counts = [c.execution_count for c in b.cells if c.cell_type == "code" and c.execution_count is not None]
    assert counts and counts[0] <= 2  # numbering restarts (papermill's injected cell comes first)


def test_failed_step_gets_a_fresh_kernel(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    pid = "import os; print(os.getpid())"
    first = int(_stdout(_run(tmp_path, "p1", pid)).split()[-1])
    with pytest.raises(PapermillExecutionError):
        _run(tmp_path, "bad", "raise ValueError('boom')")
    after = int(_stdout(_run(tmp_path, "p2", pid)).split()[-1])
    assert after != first


def test_environment_change_gets_a_fresh_kernel(tmp_path, monkeypatch):
    show = "import os; print(os.getpid(), os.environ.get('OT_ROBUST_DEADLINE'))"
    pid1, d1 = _stdout(_run(tmp_path, "e1", show)).split()[-2:]
    monkeypatch.setenv("OT_ROBUST_DEADLINE", "123.0")
    pid2, d2 = _stdout(_run(tmp_path, "e2", show)).split()[-2:]
    assert pid1 != pid2 and d1 == "None" and d2 == "123.0"


def test_fresh_kernel_switch(tmp_path, monkeypatch):
    monkeypatch.setenv(kernel.FRESH_ENV, "1")
    pid = "import os; print(os.getpid())"
    p1 = _stdout(_run(tmp_path, "f1", pid)).split()[-1]
    p2 = _stdout(_run(tmp_path, "f2", pid)).split()[-1]
    assert p1 != p2 and "km" not in kernel._kept


def test_no_tqdm_iprogress_warning_in_notebooks(tmp_path):
    """issue 17: importing the package in a kernel without ipywidgets prints no TqdmWarning (tqdm.auto did)."""
    nb = _run(tmp_path, "w", "import ot_robust.evaluation.suite, ot_robust.training.api, ot_robust.study.tasks\n"
                             "from ot_robust.core.utils import tqdm_class\nfor _ in tqdm_class()(range(3)): pass")
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "IProgress" not in text and "TqdmWarning" not in text


@pytest.mark.skipif(os.name != "posix", reason="IPC transport exists on POSIX only (TCP elsewhere)")
def test_ipc_transport_no_tcp_warning_and_sockets_removed(tmp_path, capfd):
    """The kept kernel talks over Unix sockets in a private folder (not the step's cwd), ipykernel prints no
    'running over TCP without encryption' warning, and shutdown removes the sockets."""
    _run(tmp_path, "ipc", "print('hi')")
    km, sockets = kernel._kept["km"], kernel._kept["sockets"]
    assert km.transport == "ipc" and km.ip.startswith(sockets) and os.listdir(sockets)
    assert not [p for p in tmp_path.iterdir() if p.is_socket()]  # no socket left in the working folder
    kernel.shutdown()
    assert not os.path.exists(sockets)
    assert "without encryption" not in capfd.readouterr().err


def test_tqdm_disable_env_silences_every_bar(monkeypatch):
    """$TQDM_DISABLE=1 (set for the notebooks committed with outputs) turns off even bars made with disable=False."""
    import io

    from ot_robust.core.utils import tqdm_class

    buf = io.StringIO()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for _ in tqdm_class()(range(3), disable=False, file=buf):
        pass
    assert buf.getvalue() == ""
    monkeypatch.delenv("TQDM_DISABLE")
    for _ in tqdm_class()(range(3), disable=False, file=buf):
        pass
    assert "3/3" in buf.getvalue()
