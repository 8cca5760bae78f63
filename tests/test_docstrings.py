"""Every public name has a docstring with a short example (a ``>>>`` line): issue 9, item 5.

The public API is what the modules in MODULES export (their ``__all__``, else every name not
starting with "_") that is a function or a class defined in dtrain, plus the public methods of
Tensor, nn.Module, the optimizers and the lr schedulers. Left out on purpose: dtypes and other
constants (not callables), submodules, and the standard ``multiprocessing`` names that
dtrain.multiprocessing re-exports (their ``__module__`` is not dtrain's).

Each example must compile, and the examples that need no outside names are run (in a child
process, in an empty temporary directory, so one that sets global state or writes a file cannot
disturb the other tests).
"""
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MODULES = ["dtrain", "dtrain.nn", "dtrain.nn.functional", "dtrain.nn.init", "dtrain.optim",
           "dtrain.optim.lr_scheduler", "dtrain.utils.data", "dtrain.distributed",
           "dtrain.multiprocessing", "dtrain.nn.parallel", "dtrain.datasets"]

# classes whose public methods (their own and inherited from dtrain) are public API too
CLASSES_WITH_METHODS = ["dtrain.Tensor", "dtrain.nn.Module"]
CLASS_FAMILIES = {"dtrain.optim": "Optimizer", "dtrain.optim.lr_scheduler": "LRScheduler"}

EXCLUDED = {
    "dtrain.nn.init.default_generator": "a helper nn.init imports; not torch.nn.init's API",
    "dtrain.nn.init.no_grad": "a helper nn.init imports; not torch.nn.init's API",
}

# Public names whose docstrings live in files outside the change that added this test. Remove
# an entry once its docstring has an example (test_pending_list_is_current says when).
PENDING = {}

# examples that need a process group or start processes are only compiled, never run
NOT_RUN = ("dtrain.distributed.", "dtrain.multiprocessing.", "dtrain.nn.parallel.")


def _ours(obj):
    return (inspect.isfunction(obj) or inspect.isclass(obj)) and \
        (getattr(obj, "__module__", None) or "").startswith("dtrain")


def public_names():
    """{qualified name: object} for every public function and class of MODULES."""
    found = {}
    for modname in MODULES:
        mod = importlib.import_module(modname)
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name)
            if _ours(obj) and f"{modname}.{name}" not in EXCLUDED:
                found[f"{modname}.{name}"] = obj
    return found


def public_methods():
    """{qualified name: function} for the public methods of Tensor, Module and every optimizer
    and scheduler, each listed under the class that defines it (so an override is checked)."""
    classes = [getattr(importlib.import_module(p.rpartition(".")[0]), p.rpartition(".")[2])
               for p in CLASSES_WITH_METHODS]
    for modname, base in CLASS_FAMILIES.items():
        mod = importlib.import_module(modname)
        classes += [obj for obj in map(mod.__dict__.get, mod.__all__)
                    if inspect.isclass(obj) and issubclass(obj, getattr(mod, base))]
    found = {}
    for cls in classes:
        for klass in cls.__mro__:
            if not klass.__module__.startswith("dtrain"):
                continue
            for name, attr in vars(klass).items():
                attr = getattr(attr, "__func__", attr)  # staticmethod, classmethod
                if not name.startswith("_") and callable(attr):
                    found.setdefault(f"{klass.__module__}.{klass.__qualname__}.{name}", attr)
    return found


def _doc(obj):
    return obj.__doc__ or ""  # its own: a class does not inherit its base's example


def examples(doc):
    """The ``>>>`` snippets of a docstring, with their ``...`` continuation lines."""
    out = []
    for line in doc.splitlines():
        i = line.find(">>> ")
        if i >= 0:
            out.append(line[i + 4:])
        elif out and line.strip().startswith("..."):
            out[-1] += "\n" + line.strip()[4:]
    return out


def run_examples():
    """Run each docstring's examples in order until one uses a name it does not define (most
    use ``x``, ``model``, ...) or a file that is not there. Returns the failures."""
    import numpy as np

    import dtrain
    import dtrain.nn.functional as F
    failures, ran = [], 0
    for name, obj in {**public_names(), **public_methods()}.items():
        if name.startswith(NOT_RUN):
            continue
        namespace = {"dtrain": dtrain, "nn": dtrain.nn, "F": F, "np": np}
        for snippet in examples(_doc(obj)):
            if "doctest: +SKIP" in snippet:
                continue
            try:
                exec(compile(snippet, name, "exec"), namespace)
            except (NameError, FileNotFoundError):
                break
            except Exception as e:  # noqa: BLE001  (any other error is a wrong example)
                failures.append(f"{name}: {snippet!r} raised {type(e).__name__}: {e}")
                break
            ran += 1
    return {"failures": failures, "ran": ran}


def test_public_names_have_examples():
    missing = sorted(n for n, obj in public_names().items()
                     if ">>>" not in _doc(obj) and n not in PENDING)
    assert not missing, f"{len(missing)} public names without a '>>>' example: {missing}"


def test_public_methods_have_examples():
    missing = sorted(n for n, fn in public_methods().items() if ">>>" not in _doc(fn))
    assert not missing, f"{len(missing)} public methods without a '>>>' example: {missing}"


def test_pending_list_is_current():
    names = public_names()
    stale = sorted(n for n in PENDING if n not in names or ">>>" in _doc(names[n]))
    assert not stale, f"these now have examples (or are gone): remove them from PENDING: {stale}"


def test_examples_compile():
    bad = []
    for name, obj in {**public_names(), **public_methods()}.items():
        for snippet in examples(_doc(obj)):
            try:
                compile(snippet, name, "exec")
            except SyntaxError as e:
                bad.append(f"{name}: {snippet!r}: {e}")
    assert not bad, "\n".join(bad)


def test_self_contained_examples_run():
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_docstrings; "
            "print(json.dumps(test_docstrings.run_examples()))")
    tests = Path(__file__).resolve().parent
    path = os.pathsep.join(filter(None, [str(tests.parent), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="dtrain-docstrings-") as cwd:
        proc = subprocess.run([sys.executable, "-c", code, str(tests)], cwd=cwd, timeout=60,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert not result["failures"], "\n".join(result["failures"])
    assert result["ran"] > 50, f"only {result['ran']} examples ran: is the runner broken?"
