"""`wharf config` and bad input through the real CLI: one line with file:line, exit 1, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WHARF = [sys.executable, "-m", "reconciler.cli.app"]
REPO = Path(__file__).resolve().parents[2]


def wharf(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_PROFILES", "TAG"))}
    e["PYTHONPATH"] = str(REPO)
    e.update(env or {})
    return subprocess.run([*WHARF, *args], cwd=cwd, capture_output=True, text=True, env=e, timeout=60)


def test_config_resolves_and_prints_json(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=1.2\n")
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: busybox:${TAG}\n    ports: ['80']\n")
    r = wharf("config", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["name"] == tmp_path.name.lower() and data["services"]["web"]["image"] == "busybox:1.2"
    assert data["services"]["web"]["ports"] == [{"target": 80}]
    r = wharf("config", cwd=tmp_path)
    assert r.returncode == 0 and "image: busybox:1.2" in r.stdout


@pytest.mark.parametrize("text,fragment", [
    ("services:\n  web:\n    image: x\n    ports: [\"80:80:80:80\"]\n", "compose.yaml:4:13: services.web.ports[0]"),
    ("services:\n  web: [\n", "compose.yaml:3:1: invalid YAML"),
    ("services:\n  web:\n    image: ${NEED:?please set NEED}\n", "please set NEED"),
    ("services:\n  web:\n    image: x\n    scale: many\n", "compose.yaml:4:12: services.web.scale"),
])
def test_bad_input_one_line_exit_1(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "compose.yaml").write_text(text)
    for verb in ("config", "diff", "apply"):
        r = wharf(verb, cwd=tmp_path)
        assert r.returncode == 1, (verb, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and fragment in r.stderr, r.stderr
        assert r.stderr.startswith("wharf: error: ")


def test_ignore_unsupported(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: x\n    shm_size: 1g\n")
    r = wharf("config", cwd=tmp_path)
    assert r.returncode == 1 and "unsupported key 'shm_size'" in r.stderr and "compose.yaml:4:" in r.stderr
    r = wharf("config", "--ignore-unsupported", cwd=tmp_path)
    assert r.returncode == 0 and "warning" in r.stderr and "shm_size" in r.stderr
