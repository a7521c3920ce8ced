"""issue 17 and the plain-install report: `pip install .` gives the library only (no Jupyter, papermill, pytest,
torchattacks), every third-party module the library imports is one of its dependencies, and in a fresh virtual
environment outside the checkout that plain install runs the README's own Python examples (the code blocks marked
``<!-- install-test -->``) with the sanity suite on; the environment's size and package count are printed and compared
with the full install's (`make`: the extras notebooks, dev and slurm, and torchattacks)."""

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# import name -> distribution name where they differ
DIST = {"yaml": "pyyaml", "sklearn": "scikit-learn", "ot": "pot", "PIL": "pillow", "IPython": "ipykernel",
        "jupyter_client": "papermill", "jupyter_core": "papermill"}  # the Jupyter clients come with papermill
INDIRECT = {"pillow"}  # installed with torchvision (pinned through it)
OPTIONAL = {"ipywidgets"}  # only probed (utils.tqdm_class: the notebook bar if present), never required
MARKER = "<!-- install-test -->"


def _name(req: str) -> str:
    return re.split(r"[=<>!~\[; ]", req, maxsplit=1)[0].lower()


def _imports(files) -> set[str]:
    found = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "ot_robust"}


def test_every_third_party_import_is_declared_and_the_library_needs_no_extra():
    """The library (everything but ot_robust/study/, the notebook pipeline) imports only `dependencies` (torchattacks
    excepted: the separate --no-deps step, imported lazily, checked up front); study/ may also use the extras."""
    project = PYPROJECT["project"]
    deps = {_name(d) for d in project["dependencies"]}
    extras = {k: {_name(d) for d in v} for k, v in project["optional-dependencies"].items()}
    assert {"notebooks", "dev", "slurm"} <= set(extras), extras
    assert not ({"papermill", "jupyterlab", "nbformat", "ipykernel", "nbval", "pytest", "submitit"} & deps)
    files = list((REPO / "ot_robust").rglob("*.py"))
    study = [f for f in files if "study" in f.relative_to(REPO / "ot_robust").parts[:1]]
    library = [f for f in files if f not in study]

    def undeclared(mods, allowed):
        return sorted(m for m in mods if DIST.get(m, m).lower() not in allowed | INDIRECT and m not in OPTIONAL
                      and m != "torchattacks")

    assert not undeclared(_imports(library), deps), "the library imports packages `pip install .` does not install"
    everything = deps.union(*extras.values())
    assert not undeclared(_imports(study), everything), "imported but declared nowhere in pyproject.toml"

    from ot_robust.attacks.library import TORCHATTACKS_PIN

    assert PYPROJECT["tool"]["ot_robust"]["no_deps"] == [TORCHATTACKS_PIN]  # the error message names the pin


def test_pip_install_dot_imports_and_evaluates(tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    code = (
        "import ot_robust, pathlib; from ot_robust.evaluation.suite import evaluate\n"
        "from ot_robust.profiles import load_profile\n"
        "from ot_robust.models import get_model\n"
        f"assert pathlib.Path(ot_robust.__file__).is_relative_to({str(target)!r}), ot_robust.__file__\n"
        "load_profile('quick')\n"
        "rep = evaluate(get_model('small_cnn', 'mnist-sample'), 'mnist-sample', ['pgd-linf eps=0.1 steps=2', "
        "'autoattack eps=0.1 steps=2 fab_steps=2 targets=2 queries=20'], n_examples=8, sanity=False, progress=False)\n"
        "print('OK', len(rep.table))  # clean, PGD, AutoAttack, worst case\n")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env=env)
    assert r.returncode == 0 and "OK 4" in r.stdout, r.stderr[-3000:]


# ---- the plain install in a fresh virtual environment, running the README ----

# What the README's examples take from the reader ("yours"): a model factory my_pkg.models.build, its weights
# weights.pt, RobustBench-shaped weights Carmon2019Unlabeled.pt. A small CIFAR-shaped CNN stands in for them.
USER_MODELS = '''\
import torch
from torch import nn


class Net(nn.Module):
    """[0, 1] images (B, 3, 32, 32) -> logits (B, 10), normalization inside."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(16 * 16, 10)

    def forward(self, x):
        return self.head(self.features((x - 0.5) / 0.25))


def build():
    return Net()
'''
MAKE_WEIGHTS = '''\
import torch
from my_pkg.models import build
torch.manual_seed(0)
sd = build().state_dict()
torch.save(sd, "weights.pt")
torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, "Carmon2019Unlabeled.pt")  # RobustBench's shape
'''
# appended after the README's blocks: what ran, from where
CHECKS = '''
import json as _json, ot_robust as _o
_sanity = [s["check"] for s in report.sanity]
assert "blackbox_vs_whitebox" in _sanity and len(_sanity) >= 7, _sanity  # the sanity suite ran, Square included
print("INSTALL-TEST", _json.dumps({"package": _o.__file__, "sanity": _sanity, "rows": len(report.table),
                                   "robustbench_sanity": len(res["sanity"])}))
'''


def readme_blocks() -> list[str]:
    """The Python code blocks of README.md, then docs/usage.md (RobustBench's protocol), that follow a
    ``<!-- install-test -->`` line, verbatim."""
    text = (REPO / "README.md").read_text() + (REPO / "docs" / "usage.md").read_text()
    return re.findall(re.escape(MARKER) + r"[ \t]*\n```python\n(.*?)\n```", text, flags=re.S)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            total += st.st_size
    return total


def _packages(python) -> list[str]:
    r = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return sorted(p["name"].lower() for p in json.loads(r.stdout))


def test_readme_has_the_marked_blocks():
    blocks = readme_blocks()
    assert len(blocks) >= 2, f"README.md: expected the 'Evaluate your own model' blocks after {MARKER!r} lines"
    assert any("evaluate(" in b for b in blocks) and any("benchmark(" in b for b in blocks)


@pytest.mark.slow
def test_plain_install_in_a_fresh_venv_runs_the_readme_examples(tmp_path_factory, data_root):
    """`pip install <checkout>` (no extras) into a new venv outside the checkout (torch from the machine's on-disk
    copies through pip's own configuration, no network beyond it needed), then the README's marked Python blocks,
    verbatim, as one script, with OT_ROBUST_DATA set and the sanity suite on (the README's default)."""
    base = tmp_path_factory.mktemp("plain-install")
    assert not base.resolve().is_relative_to(REPO)
    venv, work = base / "venv", base / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["OT_ROBUST_DATA"] = str(Path(data_root).resolve())  # CI sets a relative ../shared/data
    env["PIP_NO_INPUT"] = "1"
    py = venv / "bin" / "python"
    try:
        r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        t0 = time.monotonic()
        r = subprocess.run([str(py), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                            "--progress-bar", "off", "--prefer-binary", str(REPO)],
                           capture_output=True, text=True, timeout=1800, env=env, cwd=work)
        assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
        took = time.monotonic() - t0

        plain = _packages(py)
        size = _tree_size(venv)
        print(f"\nplain `pip install .`: {len(plain)} packages, {size / 2**30:.2f} GiB, {took:.0f} s, in {venv}")
        extras = {_name(d) for v in PYPROJECT["project"]["optional-dependencies"].values() for d in v}
        assert not (extras | {"torchattacks"}) & set(plain), sorted((extras | {"torchattacks"}) & set(plain))
        assert {_name(d) for d in PYPROJECT["project"]["dependencies"]} <= set(plain)

        (work / "my_pkg").mkdir()
        (work / "my_pkg" / "__init__.py").write_text("")
        (work / "my_pkg" / "models.py").write_text(USER_MODELS)
        r = subprocess.run([str(py), "-c", MAKE_WEIGHTS], capture_output=True, text=True, timeout=600, env=env,
                           cwd=work)
        assert r.returncode == 0, r.stderr[-3000:]

        code = "\n\n".join(readme_blocks())
        if not (Path(env["OT_ROBUST_DATA"]) / "cifar-10-batches-py").is_dir():
            # the only change to the README's code: these machines hold CIFAR-10 as the lossy JPEG copy only
            code = code.replace('"cifar10"', '"cifar10-jpeg"')
            print('README code: "cifar10" -> "cifar10-jpeg" (no cifar-10-batches-py under OT_ROBUST_DATA)')
        (work / "readme_examples.py").write_text(code + "\n" + CHECKS)
        t0 = time.monotonic()
        r = subprocess.run([str(py), "readme_examples.py"], capture_output=True, text=True, timeout=1500, env=env,
                           cwd=work)
        assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-5000:])
        print(f"README examples: {time.monotonic() - t0:.0f} s")
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith("INSTALL-TEST "))
        info = json.loads(line.split(" ", 1)[1])
        assert Path(info["package"]).resolve().is_relative_to(venv.resolve()), info  # the installed copy ran
        assert (work / "eval.json").is_file()
        print(r.stdout[-3000:])

        # the README's first example (a zoo model) in the same plain install: the installed package has no results/
        # beside it and reads the clone's through OT_ROBUST_RESULTS (from inside the clone, ./results)
        quick = (REPO / "README.md").read_text().split("<!-- quickstart -->", 1)[1]
        quick = quick.split("```python\n", 1)[1].split("```", 1)[0]
        (work / "quickstart.py").write_text(quick + "\nimport ot_robust as _o; print('QUICKSTART', _o.__file__)\n")
        r = subprocess.run([str(py), "quickstart.py"], capture_output=True, text=True, timeout=600, cwd=work,
                           env={**env, "OT_ROBUST_RESULTS": str(REPO / "results")})
        assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
        assert Path(r.stdout.split("QUICKSTART ", 1)[1].strip()).resolve().is_relative_to(venv.resolve())
        print(r.stdout[-1500:])

        full = _packages(sys.executable)
        if importlib.util.find_spec("jupyterlab") is not None:  # the tests run in the full install (`make`)
            full_size = _tree_size(Path(sys.prefix))
            print(f"full install (`make`, {sys.prefix}): {len(full)} packages, {full_size / 2**30:.2f} GiB")
            assert len(plain) <= 0.6 * len(full), (len(plain), len(full))
    finally:
        shutil.rmtree(base, ignore_errors=True)  # a few GB: never left behind in pytest's kept temp folders
