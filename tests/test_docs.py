"""Keep docs/api.md and docs/migrating.md honest about the code.

- api.md's tables: every name marked supported or partial exists in dtrain (``torch.`` ->
  ``dtrain.``), every name marked not supported does not, and (with torch installed) every
  torch name is a real torch 2.13 name and torch.nn's modules and torch.distributed's API are
  all listed.
- Every ``dtrain.*`` name in either doc exists.
- Environment variables: every DTRAIN_* variable the docs mention is in the code, every one the
  code uses is documented, and every variable in migrating.md's table is used by the code.
- dtrain-run: the flags in migrating.md's table are the parser's, every parser flag is
  documented, and every ``dtrain-run`` command line in the docs parses.
- The code examples run: the before/after DDP script under dtrain-run, the custom Function,
  and the checkpoint conversion (with torch).
- "Coming soon (pending)" sections name things not in the code yet; when one lands, the test
  that says so fails, so it gets moved into the tables, where the checks above apply.
"""
import contextlib
import importlib
import importlib.util
import inspect
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API = (DOCS / "api.md").read_text()
MIGRATING = (DOCS / "migrating.md").read_text()

STATUSES = ("supported", "partial", "not supported", "pending")
TORCH_NAME = re.compile(r"`(torch(?:\.\w+)+)`")
DTRAIN_NAME = re.compile(r"(?<![\w.])dtrain(?:\.[A-Za-z_]\w*)+")
ENV_NAME = re.compile(r"\bDTRAIN_[A-Z0-9_]+\b")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9_-]*|-[a-z])\b")
PENDING_HEADING = "## Coming soon (pending)"


# --- reading the docs -------------------------------------------------------------------------

def split_pending(text):
    """(the text without its pending section, the pending section)."""
    start = text.find(PENDING_HEADING)
    if start < 0:
        return text, ""
    end = text.find("\n## ", start + len(PENDING_HEADING))
    end = len(text) if end < 0 else end
    return text[:start] + text[end:], text[start:end]


def tables(text):
    """Every markdown table: a list of rows (header first, separator dropped) of cells."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def table_rows(text):
    return [row for table in tables(text) for row in table]


def table_with_header(text, header):
    (table,) = [t for t in tables(text) if t[0][:len(header)] == header]
    return table[1:]


def api_rows():
    """(names, status, line) for every status row of api.md."""
    rows = []
    for cells in table_rows(API):
        if len(cells) >= 2 and cells[1] in STATUSES:
            names = TORCH_NAME.findall(cells[0])
            assert names, f"api.md row without a torch name: {cells}"
            rows.append((names, cells[1], cells[0]))
    return rows


def names_with(*statuses):
    return sorted({n for names, status, _ in api_rows() if status in statuses for n in names})


def code_blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def doc_texts():
    """Every doc a user reads: docs/*.md and README.md."""
    return {p.name: p.read_text() for p in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]}


# --- resolving names --------------------------------------------------------------------------

def resolve(dotted):
    """The object ``dotted`` names ("dtrain.nn.Linear", "torch.Tensor.backward"), importing
    submodules as needed; LookupError if there is none. Class attributes are looked up on the
    class, so properties resolve without an instance."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i in range(1, len(parts)):
        try:
            obj = getattr(obj, parts[i])
        except AttributeError:
            name = ".".join(parts[:i + 1])
            if not hasattr(obj, "__path__") or importlib.util.find_spec(name) is None:
                raise LookupError(dotted) from None
            if i == len(parts) - 1:
                return name  # a submodule: that it exists is enough, so do not import it
            obj = importlib.import_module(name)
    return obj


def exists(dotted):
    try:
        resolve(dotted)
        return True
    except LookupError:
        return False


def as_dtrain(torch_name):
    return "dtrain" + torch_name[len("torch"):]


# --- the code ---------------------------------------------------------------------------------

def source_text():
    return "\n".join(p.read_text() for d in ("dtrain", "launcher")
                     for p in sorted((ROOT / d).rglob("*.py")))


def parser_flags():
    from launcher.cli import parser
    return {s: a for a in parser()._actions for s in a.option_strings}


# --- api.md -----------------------------------------------------------------------------------

def test_api_table_is_well_formed():
    rows = api_rows()
    assert len(rows) > 50
    for names, _, cell in rows:
        # everything in backticks in the first column is a torch name
        assert len(names) == len(re.findall(r"`[^`]+`", cell)), cell
    seen = [n for names, _, _ in rows for n in names]
    doubles = sorted({n for n in seen if seen.count(n) > 1})
    assert not doubles, f"listed twice in api.md: {doubles}"


def test_supported_and_partial_names_exist_in_dtrain():
    missing = [n for n in names_with("supported", "partial") if not exists(as_dtrain(n))]
    assert not missing, f"api.md marks these supported or partial, but dtrain lacks them: {missing}"


def test_not_supported_names_are_absent_from_dtrain():
    present = [n for n in names_with("not supported") if exists(as_dtrain(n))]
    assert not present, (f"api.md marks these not supported, but dtrain has them now: "
                         f"{present}; update their rows")


def test_every_dtrain_name_in_the_docs_exists():
    text = split_pending(API)[0] + split_pending(MIGRATING)[0]
    missing = sorted({n for n in DTRAIN_NAME.findall(text) if not exists(n)})
    assert not missing, f"the docs name these, but dtrain has no such thing: {missing}"


@pytest.mark.torch
def test_every_torch_name_in_api_md_is_torchs(torch):
    missing = [n for names, _, _ in api_rows() for n in names if not exists(n)]
    assert not missing, f"api.md lists these as torch APIs, but torch has no such names: {missing}"


@pytest.mark.torch
def test_every_torch_nn_module_is_listed(torch):
    modules = sorted(f"torch.nn.{n}" for n, obj in vars(torch.nn).items()
                     if inspect.isclass(obj) and issubclass(obj, torch.nn.Module))
    listed = set(names_with(*STATUSES))
    assert [m for m in modules if m not in listed] == []


@pytest.mark.torch
def test_every_torch_distributed_api_is_listed(torch):
    from torch.distributed import distributed_c10d
    listed = set(names_with(*STATUSES))
    api = sorted(f"torch.distributed.{n}" for n in distributed_c10d.__all__)
    assert [n for n in api if n not in listed] == []


def test_custom_function_example_runs():
    (example,) = [b for b in code_blocks(API, "python") if "class Cube" in b]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, "api.md", "exec"), {})
    assert out.getvalue().strip() == "tensor([ 3., 12.])"


# --- environment variables --------------------------------------------------------------------

def test_documented_dtrain_variables_exist_in_the_code():
    source = source_text()
    for name, text in doc_texts().items():
        documented = set(ENV_NAME.findall(split_pending(text)[0]))
        missing = sorted(v for v in documented if not re.search(rf"\b{v}\b", source))
        assert not missing, f"{name} mentions {missing}, which the code never uses"


def test_every_dtrain_variable_of_the_code_is_documented():
    used = set(ENV_NAME.findall(source_text()))
    documented = set().union(*(ENV_NAME.findall(t) for t in doc_texts().values()))
    assert sorted(used - documented) == []


def env_table():
    rows = table_with_header(MIGRATING, ["Variable", "Set by", "Read by", "Meaning"])
    return [n for cells in rows for n in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])]


def test_migrating_env_table_lists_every_variable_the_code_uses():
    table = env_table()
    assert {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK",
            "DTRAIN_JOB_TOKEN", "DTRAIN_TIMEOUT"} <= set(table)
    source = source_text()
    assert [v for v in table if not re.search(rf"\b{v}\b", source)] == []
    assert sorted(set(ENV_NAME.findall(source)) - set(table)) == []


# --- dtrain-run -------------------------------------------------------------------------------

def flag_table():
    return table_with_header(MIGRATING, ["torchrun", "dtrain-run", "Notes"])


def test_dtrain_run_flags_in_migrating_md_exist():
    flags = parser_flags()
    table = flag_table()
    assert len(table) > 10
    documented = [f for _, ours, _ in table for f in FLAG.findall(ours)]
    assert "--nprocs" in documented
    assert [f for f in documented if f not in flags] == []


def test_every_dtrain_run_flag_is_in_migrating_md():
    mentioned = set(FLAG.findall(MIGRATING))
    undocumented = sorted({a.option_strings[0] for a in parser_flags().values()
                           if a.dest != "help" and not mentioned & set(a.option_strings)})
    assert undocumented == [], "dtrain-run flags that docs/migrating.md does not mention"


@pytest.mark.torch
def test_torchrun_flags_in_migrating_md_are_torchruns(torch):
    from torch.distributed.run import get_args_parser
    theirs = {s for a in get_args_parser()._actions for s in a.option_strings}
    documented = [f for torchrun, _, _ in flag_table() for f in FLAG.findall(torchrun)]
    assert [f for f in documented if f not in theirs] == []


def test_dtrain_run_command_lines_in_the_docs_parse():
    from launcher.cli import parser
    commands = []
    for text in (API, MIGRATING):
        for block in code_blocks(split_pending(text)[0], "bash"):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words.pop(0)  # VAR=value before the command
                if words[:1] == ["dtrain-run"]:
                    commands.append(words[1:])
    assert len(commands) >= 7
    for argv in commands:
        args = parser().parse_args(argv)
        assert args.script.endswith(".py") or args.module, argv


# --- the migration example --------------------------------------------------------------------

def before_and_after():
    blocks = code_blocks(MIGRATING, "python")
    (before,) = [b for b in blocks if b.startswith("import torch\n")]
    (after,) = [b for b in blocks if b.startswith("import dtrain as torch\n")]
    return before, after


def test_before_and_after_differ_only_in_imports_and_launcher():
    before, after = before_and_after()
    compile(before, "before.py", "exec")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines())
    for theirs, ours in changed:
        assert (ours.startswith(("import dtrain", "from dtrain"))
                or theirs.replace("torchrun", "dtrain-run") == ours), (theirs, ours)


def test_after_example_runs_under_dtrain_run(tmp_path):
    _, after = before_and_after()
    (tmp_path / "train.py").write_text(after)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "launcher", "--nprocs", "2", "train.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert re.search(r"^\[rank0\]:epoch 2: loss \d\.\d{3}$", output, re.M), output
    import dtrain
    state = dtrain.load(tmp_path / "model.pt")
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.mark.torch
def test_checkpoint_conversion_example_runs(torch, tmp_path, monkeypatch):
    (example,) = [b for b in code_blocks(MIGRATING, "python") if "torch_model.pt" in b]
    monkeypatch.chdir(tmp_path)
    model = torch.nn.Linear(3, 2)
    wrapped = {f"module.{k}": v for k, v in model.state_dict().items()}  # as a torch DDP saves
    torch.save(wrapped, "torch_model.pt")
    exec(compile(example, "migrating.md", "exec"), {})
    back = torch.load("torch_model.pt")
    assert sorted(back) == ["bias", "weight"]
    assert torch.equal(back["weight"], model.weight.detach())
    import dtrain
    dtrain.nn.Linear(3, 2).load_state_dict(dtrain.load("model.dtrain"))


# --- pending --------------------------------------------------------------------------------

def pending_names():
    """Flags, DTRAIN_* variables and dotted names in the pending sections' first columns."""
    names = set()
    for text in (API, MIGRATING):
        for cells in table_rows(split_pending(text)[1])[1:]:
            first = cells[0]
            names.update(FLAG.findall(first), ENV_NAME.findall(first),
                         DTRAIN_NAME.findall(first), TORCH_NAME.findall(first))
    return sorted(names)


def test_pending_names_have_not_landed_yet():
    """When one of these lands, move it from "Coming soon (pending)" into the tables."""
    source, flags = source_text(), parser_flags()
    landed = []
    for name in pending_names():
        if name.startswith("-"):
            landed += [name] if name in flags else []
        elif name.startswith("DTRAIN_"):
            landed += [name] if re.search(rf"\b{name}\b", source) else []
        elif name.startswith(("dtrain.", "torch.")):
            dotted = as_dtrain(name) if name.startswith("torch.") else name
            landed += [name] if exists(dotted) else []
    assert landed == [], f"these have landed: move them out of the pending sections: {landed}"
