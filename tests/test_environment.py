"""pyproject.toml and environment.yml pin the same packages; the import surface works."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", r.strip())
        assert m, f"not an exact pin: {r!r}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_pyproject_and_environment_yml_agree():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = _pins(pyproject["project"]["dependencies"])
    extras = pyproject["project"]["optional-dependencies"]
    notebooks, dev = _pins(extras["notebooks"]), _pins(extras["dev"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _pins(pip_section) == {**deps, **notebooks, **dev}  # conda: the library + extras notebooks and dev
    assert "python=3.11" in env["dependencies"]
    for required in ("torch", "torchvision", "matplotlib", "seaborn", "scikit-learn", "pandas", "pot", "tqdm",
                     "pyyaml", "pyautoattack"):
        assert required in deps, required
    for required in ("papermill", "jupyterlab", "ipykernel"):
        assert required in notebooks, required
    for required in ("nbval", "pytest"):
        assert required in dev, required
    assert deps["torch"] == "2.14.1" and deps["torchvision"] == "0.29.1"


def test_torchattacks_pinned_and_installed_at_that_version():
    from importlib import metadata

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (spec,) = pyproject["tool"]["ot_robust"]["no_deps"]
    name, version = spec.split("==")
    assert metadata.version(name) == version
    assert version in (REPO / "environment.yml").read_text()  # the conda instructions name the same version
    import torchattacks

    assert hasattr(torchattacks, "SPSA")  # 3.3.0, pip's silent fallback, lacks it


def test_installed_versions_match_pins():
    from importlib import metadata

    deps = _pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    for name in ("torch", "torchvision", "pot", "numpy", "pandas"):
        assert metadata.version(name).split("+")[0] == deps[name], name
