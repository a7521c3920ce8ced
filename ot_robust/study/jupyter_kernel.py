"""One long-lived Jupyter kernel per pipeline worker: papermill runs every step's notebook in it.

A fresh kernel per step costs 11-12 s on these CPUs (starting IPython, importing torch and the package): 44 steps
of ``quick`` spent ~9 minutes on it. :func:`execute_notebook` keeps one kernel per process (the pipeline's main
process for ``--jobs 1``, each worker process for ``--jobs N``) and hands it to papermill (``km=``), so the
notebooks stay what a user runs and opens, and each step still writes its executed notebook.

Between steps the kernel is reset (:data:`RESET_CODE`: ``%reset -f`` clears every name, matplotlib figures are
closed, torch's deterministic-algorithm flag and cuDNN benchmark flag go back to their defaults, the execution
count restarts at 1), so a step sees what a fresh kernel would, apart from modules already imported. The kernel
is replaced when the working folder, the kernel name or the environment the steps read (``OMP_NUM_THREADS``,
``OT_ROBUST_*``, ``PYTHONPATH``) changes, and after any failed step (a kernel in an unknown state never runs the
next step). ``OT_ROBUST_FRESH_KERNEL=1`` starts a fresh kernel for every step (the papermill default).

On POSIX the kept kernel talks over IPC (Unix sockets in a private temporary folder, removed at shutdown) instead
of TCP on localhost: ipykernel >= 7 warns on every start that TCP traffic is unencrypted, and IPC keeps the steps'
code and outputs off the network stack.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

FRESH_ENV = "OT_ROBUST_FRESH_KERNEL"

#: Run in the kept kernel before each step (names starting with ``_`` are removed again).
RESET_CODE = """\
%reset -f
import gc as _gc, sys as _sys
if "torch" in _sys.modules:
    _sys.modules["torch"].use_deterministic_algorithms(False)
    _sys.modules["torch"].backends.cudnn.benchmark = False
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
get_ipython().execution_count = 0
_gc.collect()
del _gc, _sys
"""

_ENV_KEYS = ("OMP_NUM_THREADS", "PYTHONPATH", "CUDA_VISIBLE_DEVICES")
_kept: dict[str, Any] = {}  # {"key": ..., "km": AsyncKernelManager}


def _key(cwd: str, kernel_name: str) -> tuple:
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k in _ENV_KEYS or k.startswith("OT_ROBUST_")))
    return (str(Path(cwd).resolve()), kernel_name, env)


def notebook_kernel_name(path: str | Path) -> str:
    """The kernelspec name a notebook asks for (``python3`` when it names none), as papermill would pick it."""
    meta = json.loads(Path(path).read_text()).get("metadata", {})
    return (meta.get("kernelspec") or {}).get("name") or "python3"


def shutdown() -> None:
    """Shut the kept kernel down (no-op when there is none)."""
    km = _kept.pop("km", None)
    _kept.pop("key", None)
    sockets = _kept.pop("sockets", None)
    if km is not None:
        from jupyter_core.utils import run_sync

        try:
            if run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - the kernel may already be gone
            pass
    if sockets is not None:
        shutil.rmtree(sockets, ignore_errors=True)


def _new_manager(kernel_name: str):
    """An ``AsyncKernelManager`` for ``kernel_name``: IPC transport with its sockets in a private temporary folder
    on POSIX (kept in ``_kept["sockets"]`` for :func:`shutdown`), TCP elsewhere."""
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix":
        return AsyncKernelManager(kernel_name=kernel_name)
    sockets = tempfile.mkdtemp(prefix="ot-robust-kernel-")
    _kept["sockets"] = sockets
    return AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "kernel"))


def _reset(km) -> None:
    """Run :data:`RESET_CODE` in the kept kernel; raises RuntimeError if it fails."""
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_info(km.get_connection_info())
    kc.start_channels()
    try:
        reply = kc.execute_interactive(RESET_CODE, timeout=120, output_hook=lambda msg: None)
    finally:
        kc.stop_channels()
    if reply["content"].get("status") != "ok":
        raise RuntimeError(f"resetting the kept kernel failed: {reply['content'].get('evalue')}")


def _kernel(cwd: str, kernel_name: str):
    """The kept kernel manager for (cwd, kernel, environment): reset if it has run a step, else a new one that
    papermill starts (in ``cwd``) on first use."""
    from jupyter_core.utils import run_sync

    key = _key(cwd, kernel_name)
    km = _kept.get("km")
    if km is not None and _kept.get("key") == key and run_sync(km.is_alive)():
        try:
            _reset(km)
            return km
        except Exception:  # noqa: BLE001 - a kernel that cannot reset is replaced
            pass
    shutdown()
    km = _new_manager(kernel_name)
    _kept.update(key=key, km=km)
    _register_exit()
    return km


_registered = False


def _register_exit() -> None:
    """Shut the kernel down when this process exits (pool workers too: multiprocessing runs Finalize callbacks at
    a worker's exit, where atexit handlers are skipped)."""
    global _registered
    if not _registered:
        from multiprocessing.util import Finalize

        Finalize(shutdown, shutdown, exitpriority=100)
        _registered = True


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict[str, Any], cwd: str | Path,
                     kernel_name: str | None = None) -> None:
    """``papermill.execute_notebook`` in this process's kept kernel (a fresh kernel with ``$OT_ROBUST_FRESH_KERNEL``).

    Raises what papermill raises (``PapermillExecutionError`` for a failing cell, ``DeadKernelError``, ...); the
    kernel is shut down after any failure, so the next step gets a fresh one.
    """
    import papermill as pm

    name = kernel_name or notebook_kernel_name(notebook)
    kw: dict[str, Any] = dict(parameters=parameters, cwd=str(cwd), kernel_name=name, progress_bar=False,
                              log_output=False)
    if os.environ.get(FRESH_ENV, "") not in ("", "0"):
        pm.execute_notebook(str(notebook), str(output), **kw)
        return
    km = _kernel(str(cwd), name)
    try:
        pm.execute_notebook(str(notebook), str(output), km=km, engine_name=_engine(), **kw)
    except BaseException:
        shutdown()
        raise


ENGINE = "ot-robust-kept-kernel"


def _engine() -> str:
    """Register (once) papermill's nbclient engine with one change: the client's channels to the kept kernel are
    closed after the notebook (nbclient leaves them open, heartbeat thread included, when it does not own the
    kernel)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger

    if ENGINE in papermill_engines._engines:
        return ENGINE

    class KeptKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            for k in ("input_path", "timeout", "startup_timeout"):
                kwargs.pop(k, None)
            client = PapermillNotebookClient(nb_man, timeout=execution_timeout, startup_timeout=start_timeout,
                                             kernel_name=kernel_name, log=logger, log_output=log_output,
                                             stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
            try:
                return client.execute()
            finally:
                if getattr(client, "kc", None) is not None:
                    client.kc.stop_channels()
                    client.kc = None

    papermill_engines.register(ENGINE, KeptKernelEngine)
    return ENGINE
