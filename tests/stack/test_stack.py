"""stack/stack.py: the command line, the public facade other code imports, and the promise that the whole
folder runs on the standard library alone, as a script from any working directory."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from stack import stack
from tests.stack.fake_servers import free_port

STACK = Path(stack.__file__).resolve().parent


def test_status_exit_code_when_nothing_runs(state, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_PORT", str(free_port()))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    assert stack.main(["status"]) == 1
    out = capsys.readouterr().out
    assert "redis" in out and "kafka" in out and "down" in out
    assert stack.main(["env"]) == 1
    assert "stack:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name",
    ["ensure_up", "kafka_answers", "parse_bootstrap", "redis_ping", "service_env", "status", "down", "main",
     "kafka_metadata", "StackError"],
)  # fmt: skip
def test_facade_keeps_the_public_names(name):
    assert callable(getattr(stack, name))


def test_facade_all_names_exist():
    assert all(hasattr(stack, name) for name in stack.__all__)


def test_runs_as_a_script_from_another_directory(state, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_PORT", str(free_port()))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    # -I: no PYTHONPATH, no user site, script directory not trusted beyond what stack.py sets up itself
    res = subprocess.run(
        [sys.executable, "-I", str(STACK / "stack.py"), "status"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 1, res.stderr
    assert "redis" in res.stdout and "kafka" in res.stdout and "down" in res.stdout


def test_only_the_standard_library_is_imported():
    for path in sorted(STACK.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top == "stack" or top in sys.stdlib_module_names, f"{path.name} imports {name}"
