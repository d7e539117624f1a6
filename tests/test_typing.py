"""mypy --strict and pyright --strict on user scripts (tests/typing/): no error from smtpstream,
and a misspelt field is an error for both."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "typing"
SCRIPTS = sorted(str(p) for p in HERE.glob("*.py"))
REQUIRED = os.environ.get("SMTPSTREAM_REQUIRE_TYPECHECKERS") == "1"
BIN = Path(sys.executable).parent
TYPO = 'from smtpstream import smtp\nsmtp.send(sever="x", source=[b"x"])\n'


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        if REQUIRED:
            pytest.fail(f"{name} is not installed")
        pytest.skip(f"{name} is not installed (pip install '.[typing]')")
    return found


def mypy(*paths: str):
    return subprocess.run([tool("mypy"), "--config-file", str(HERE / "mypy.ini"), "--no-incremental", *paths],
                          capture_output=True, text=True, timeout=600)


def pyright(*paths: str, cwd: Path = HERE):
    return subprocess.run([tool("pyright"), "--pythonpath", sys.executable, *paths], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def test_mypy_strict():
    done = mypy(*SCRIPTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_pyright_strict():
    done = pyright(*SCRIPTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 errors" in done.stdout


def test_a_misspelt_field_is_a_type_error(tmp_path):
    script = tmp_path / "typo.py"
    script.write_text(TYPO)
    found = mypy(str(script))
    assert found.returncode == 1 and '"sever"' in found.stdout
    (tmp_path / "pyrightconfig.json").write_text((HERE / "pyrightconfig.json").read_text())
    found = pyright(str(script), cwd=tmp_path)
    assert found.returncode == 1 and "sever" in found.stdout
