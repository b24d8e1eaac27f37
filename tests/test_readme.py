"""README.md stays true: its Python examples run, its `spiralsim run` lines parse.

The ```python blocks are executed as written (in a temporary working directory
holding a copy of `scenarios/`, so relative paths resolve and written files land
there); a top-level expression whose trailing comment is a Python literal
(`result.summary["outcome"]  # 'recovered'`) must evaluate to that literal.
The `spiralsim run|compare|sweep|postmortem ...` lines of the ```sh blocks are only parsed with the CLI's
own argument parser and their scenario loaded with its overrides (validation,
no simulation).
"""
from __future__ import annotations

import ast
import io
import re
import shlex
import shutil
import tokenize
from pathlib import Path

import pytest

from spiralsim.cli import _parser
from spiralsim.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def fenced_blocks(text: str, language: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, body) of every ```language block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in _FENCE.finditer(text) if m.group(1) == language]


def shell_commands(body: str) -> list[list[str]]:
    """The commands of a shell block as argv lists: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", body)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def run_commands() -> list[tuple[str, list[str]]]:
    found = []
    for line, body in fenced_blocks(README.read_text(encoding="utf-8"), "sh"):
        for argv in shell_commands(body):
            if argv[:1] == ["spiralsim"] and argv[1:2] and argv[1] in ("run", "compare", "sweep", "postmortem"):
                found.append((f"README.md:{line}: {shlex.join(argv)}", argv))
    return found


def _expected_literal(source: str, node: ast.stmt) -> tuple[bool, object]:
    """(True, value) when `node` is a one-line expression followed by a literal comment."""
    if not isinstance(node, ast.Expr) or node.lineno != node.end_lineno:
        return False, None
    line = source.splitlines()[node.lineno - 1]
    comments = [tok.string for tok in tokenize.generate_tokens(io.StringIO(line + "\n").readline)
                if tok.type == tokenize.COMMENT]
    if not comments:
        return False, None
    try:
        return True, ast.literal_eval(comments[0][1:].strip())
    except (ValueError, SyntaxError):
        return False, None  # a prose comment ("# numpy column, ...")


PYTHON_BLOCKS = fenced_blocks(README.read_text(encoding="utf-8"), "python")
RUN_COMMANDS = run_commands()


def test_readme_has_examples():
    assert PYTHON_BLOCKS, "README.md has no ```python block"
    assert RUN_COMMANDS, "README.md has no `spiralsim run` line in a ```sh block"


@pytest.mark.parametrize("line,source", PYTHON_BLOCKS, ids=[f"README.md:{n}" for n, _ in PYTHON_BLOCKS])
def test_python_block_runs(line, source, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    filename = f"README.md:{line}"
    namespace: dict = {"__name__": "__readme__"}
    for node in ast.parse(source, filename).body:
        has_expected, expected = _expected_literal(source, node)
        if has_expected:
            value = eval(compile(ast.Expression(node.value), filename, "eval"), namespace)
            assert value == expected, (f"{filename}+{node.lineno}: {ast.get_source_segment(source, node)}"
                                       f" is {value!r}, the README says {expected!r}")
        else:
            exec(compile(ast.Module([node], type_ignores=[]), filename, "exec"), namespace)


@pytest.mark.parametrize("where,argv", RUN_COMMANDS, ids=[w for w, _ in RUN_COMMANDS])
def test_run_command_parses(where, argv):
    try:
        args = _parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"{where}: the CLI's parser rejects it (exit {exc.code})")
    assert args.command == argv[1]
    scenario = ROOT / args.scenario
    assert scenario.is_file(), f"{where}: no scenario file {args.scenario}"
    try:
        load_scenario(scenario, overrides=tuple(args.overrides), seed=getattr(args, "seed", None))
    except ScenarioError as exc:
        pytest.fail(f"{where}: the scenario does not validate:\n{exc}")


def test_readme_shows_what_the_main_job_prints():
    """The quick start's console output is the main job's, line for line."""
    from shipped import run

    from spiralsim.report import summary_lines

    blocks = fenced_blocks(README.read_text(encoding="utf-8"), "text")
    printed = summary_lines(run(ROOT / "scenarios" / "push_spike.toml").summary) + ["runs/push_spike-1"]
    assert blocks and blocks[0][1].splitlines() == printed


def test_reference_shows_what_idle_in_transaction_prints():
    """docs/reference.md's console example is that scenario's summary, line for line."""
    from shipped import run

    from spiralsim.report import summary_lines

    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    block = next(body for _, body in fenced_blocks(text, "") if body.startswith("outcome:"))
    assert block.splitlines() == summary_lines(run(ROOT / "scenarios" / "idle_in_transaction.toml").summary)
