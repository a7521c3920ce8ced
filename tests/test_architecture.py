"""The package's import graph has no cycles, between modules or between subpackages (docs/design.md, "Layers")."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ot_robust"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in the file: lazy imports count too)."""
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        base = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                prefix = base[:len(base) - node.level + 1] if node.level else []
                target = ".".join(prefix + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    edges[m].add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names)
        edges[m] = {t for t in edges[m] if t in mods and t != m}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    assert _cycles(_edges(_modules())) == []


def test_no_import_cycles_between_subpackages():
    def unit(m):
        return ".".join(m.split(".")[:2])

    units: dict[str, set[str]] = {}
    for a, targets in _edges(_modules()).items():
        units.setdefault(unit(a), set()).update(unit(b) for b in targets if unit(b) != unit(a))
    for targets in list(units.values()):
        for t in targets:
            units.setdefault(t, set())
    assert _cycles(units) == []


#: the layers, bottom (imported by the others) to top: each is a folder of the package (docs/design.md, "Layers")
LAYERS = [["core"], ["ot", "models"], ["attacks"], ["defenses"], ["presets"], ["training"], ["evaluation"],
          ["analysis"], ["profiles"], ["reports"], ["zoo"], ["study"], ["__main__"]]


def test_the_folders_are_the_layers():
    """Every module lives in a layer's folder; only ``__init__`` and ``__main__`` lie loose."""
    loose = sorted(f.stem for f in PKG.glob("*.py"))
    assert loose == ["__init__", "__main__"], f"loose modules: {loose}"
    folders = {d.name for d in PKG.iterdir() if (d / "__init__.py").is_file()}
    assert folders == {u for units in LAYERS for u in units} - {"__main__"}


def test_layers_import_only_downwards():
    rank = {u: i for i, units in enumerate(LAYERS) for u in units}
    up = [(a, b) for a, targets in _edges(_modules()).items() if "." in a for b in targets if "." in b
          and rank[b.split(".")[1]] > rank[a.split(".")[1]]]
    assert up == []


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_dataset_facts_come_from_one_table():
    """The Trainer's held-out PGD, the evaluate notebook's default suite and the analysis figures' eps agree."""
    from ot_robust.analysis import default_eps
    from ot_robust.attacks import make_attack
    from ot_robust.core.data import default_attack
    from ot_robust.study.tasks import default_attacks
    from ot_robust.training.config import TrainConfig

    for ds, eps in [("mnist", 0.3), ("mnist-sample", 0.3), ("fashion-mnist", 0.1), ("cifar10", 8 / 255),
                    ("cifar10-jpeg", 8 / 255), ("svhn", 8 / 255), ("imagefolder:/nowhere", 8 / 255)]:
        assert default_attack(ds)[0] == eps, ds
        assert TrainConfig(dataset=ds).eval_attack() == default_attack(ds)
        assert default_eps(ds) == eps
        assert make_attack(default_attacks(ds)["pgd20"]).eps == eps


#: every file name of a run folder and of an evaluation folder -> the one module that writes it (docs/design.md)
FILE_OWNERS = {
    "config.json": "ot_robust.core.run_files", "metrics.jsonl": "ot_robust.core.run_files",
    "checkpoint.pt": "ot_robust.core.run_files", "checkpoint.prev.pt": "ot_robust.core.run_files",
    "model.pt": "ot_robust.core.run_files",
    "eval.json": "ot_robust.evaluation.results", "masks.npz": "ot_robust.evaluation.results",
    "curves.json": "ot_robust.evaluation.results", "loss_curves.json": "ot_robust.evaluation.results",
}


def _file_name_literals(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` of every string constant of ``source`` in code that spells a name of :data:`FILE_OWNERS`:
    the constant itself (``run_dir / "model.pt"``) or a piece of an f-string after a slash (``f"{run_dir}/model.pt"``).
    Docstrings (the first statement of a module, class or function) are prose and left out."""
    tree = ast.parse(source)
    skip = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    pieces = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip:
            text = n.value.lstrip("/") if id(n) in pieces else n.value
            if text in FILE_OWNERS:
                out.append((n.lineno, text))
    return sorted(out)


def test_each_file_name_is_written_in_one_module():
    """A run folder's and an evaluation folder's file names are spelled only by their owner; every other module asks
    it (its constants, :class:`ot_robust.profiles.paths.RunLayout`, its readers)."""
    found = [(name, m, line) for m, f in sorted(_modules().items())
             for line, name in _file_name_literals(f.read_text())]
    assert [f"{m}:{line} spells {name!r} (ask {FILE_OWNERS[name]})" for name, m, line in found
            if m != FILE_OWNERS[name]] == []
    assert sorted(name for name, _, _ in found) == sorted(FILE_OWNERS), "each owner defines each of its names once"


def test_the_checker_finds_a_file_name():
    src = ('"""Writes model.pt."""\n'
           'def f(d, e):\n    """Reads config.json."""\n    x = d / "config.json"\n'
           '    return x, f"{d}/model.pt", f"{e} has no eval.json", "curves.json in prose", "metrics.jsonl"\n')
    assert _file_name_literals(src) == [(4, "config.json"), (5, "metrics.jsonl"), (5, "model.pt")]


def test_docstrings_describe_behaviour_not_issue_history():
    import re

    pattern = re.compile(r"\bissues? #?\d+\b", re.IGNORECASE)
    cited = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                           ast.ClassDef))]:
            doc = ast.get_docstring(node) or ""
            cited += [f"{path.relative_to(PKG)}: {m.group(0)}" for m in pattern.finditer(doc)]
        cited += [f"{path.relative_to(PKG)}: comment {m.group(0)}" for line in path.read_text().splitlines()
                  if line.lstrip().startswith("#") for m in pattern.finditer(line)]
    assert not cited, f"issue numbers are history (docs/study.md), not behaviour: {cited}"


def test_no_source_line_is_longer_than_120_characters():
    """Every line of every Python file git tracks (package, tests, scripts, benchmarks) is at most 120 characters."""
    import subprocess

    repo = PKG.parent
    files = [p for p in subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--", "*.py"], capture_output=True,
                                       text=True, check=True).stdout.split("\0") if p and (repo / p).is_file()]
    assert "tests/test_architecture.py" in files, files
    long = [f"{path}:{n} ({len(line)})" for path in sorted(files)
            for n, line in enumerate((repo / path).read_text(encoding="utf-8").split("\n"), 1) if len(line) > 120]
    assert not long, f"lines longer than 120 characters: {long}"
