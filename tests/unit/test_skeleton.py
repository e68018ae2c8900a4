"""The skeleton: the CLI starts, errors are one line, state files are atomic."""

from __future__ import annotations

import subprocess
import sys

from runtime.errors import NotFound, WharfError
from runtime.util.fs import atomic_write_json, file_lock, read_json


def test_version_command_runs():
    out = subprocess.run([sys.executable, "-m", "reconciler.cli.app", "version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("Wharf ")


def test_unknown_command_is_exit_1_without_traceback():
    p = subprocess.run([sys.executable, "-m", "reconciler.cli.app", "no-such-verb"],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr


def test_error_message_names_where_and_hint():
    e = NotFound("no such container", where="web", hint="see `wharf ps -a`")
    assert isinstance(e, WharfError) and e.exit_code == 1 and e.http_status == 404
    assert str(e) == "web: no such container\n  hint: see `wharf ps -a`"


def test_atomic_json_roundtrip(tmp_path):
    p = tmp_path / "a" / "state.json"
    with file_lock(tmp_path / "lock"):
        atomic_write_json(p, {"x": 1})
    assert read_json(p) == {"x": 1}
    assert read_json(tmp_path / "missing.json", {}) == {}
    assert [f.name for f in p.parent.iterdir()] == ["state.json"]
