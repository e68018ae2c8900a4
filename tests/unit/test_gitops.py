"""`wharf gitops` pieces that need no root: URL masking, repository names and paths, the git
mirror against real repositories (fetch, force-push, checkout), spec validation of a commit,
the state file and the CLI's argument errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.gitops import git as G
from reconciler.gitops import state as S
from reconciler.gitops.sync import GitOps, Source, _clean_path, compose_files
from runtime.errors import InvalidArgument, NotFound

REPO = Path(__file__).resolve().parents[2]
GOOD = "services:\n  web:\n    image: busybox:latest\n    command: [sleep, '60']\n"
BAD = "services:\n  web:\n    image: busybox:latest\n    comand: [sleep, '60']\n"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def commit(repo: Path, files: dict[str, str | None], msg: str) -> str:
    """Write (or, for None, delete) files, commit them all, return the new head."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    for name, text in files.items():
        p = repo / name
        if text is None:
            p.unlink()
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", msg)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = tmp_path / "wharf-root"
    r.mkdir()
    monkeypatch.setenv("WHARF_ROOT", str(r))
    return r


# ---------------------------------------------------------------- names and paths


@pytest.mark.parametrize("text, shown", [
    ("https://user:s3cret@git.example/r.git", "https://***@git.example/r.git"),
    ("https://ghp_TOKEN@git.example/r.git", "https://***@git.example/r.git"),
    ("ssh://git@git.example/r.git", "ssh://git@git.example/r.git"),
    ("ssh://deploy:pw@git.example/r.git", "ssh://deploy:***@git.example/r.git"),
    ("fatal: unable to access 'https://u:p@h/x/': 403", "fatal: unable to access 'https://***@h/x/': 403"),
    ("file:///srv/repo", "file:///srv/repo"),
    ("git@git.example:org/r.git", "git@git.example:org/r.git"),
])
def test_redact_masks_credentials(text: str, shown: str) -> None:
    assert G.redact(text) == shown


def test_resolve_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "r").mkdir()
    monkeypatch.chdir(tmp_path)
    assert G.resolve_repo("r") == str(tmp_path / "r")
    for url in ("file:///x/y", "https://h/o/r.git", "git@h:o/r.git", "ssh://h/r"):
        assert G.resolve_repo(url) == url
    with pytest.raises(NotFound, match="repository nope not found"):
        G.resolve_repo("nope")
    with pytest.raises(InvalidArgument, match="cannot start with '-'"):
        G.resolve_repo("--upload-pack=touch /tmp/x:y")


@pytest.mark.parametrize("branch", ["main", "release/1.2", "feat-x_y", None])
def test_branch_names_git_takes(branch: str | None) -> None:
    assert G.check_branch(branch) == branch


@pytest.mark.parametrize("branch", ["", "-x", "a..b", "a b", "a:b", "x.lock", "a\\b", "a~1", "a^", "@{u}", "a/",
                                    "/a", "a//b", "a\tb"])
def test_branch_names_git_refuses(branch: str) -> None:
    with pytest.raises(InvalidArgument, match="not a valid branch name"):
        G.check_branch(branch)


@pytest.mark.parametrize("url, name", [
    ("/srv/git/shop.git", "shop"), ("https://t@h/org/web-app/", "web-app"), ("git@h:org/api.git", "api"),
    ("file:///tmp/x/demo", "demo"), ("https://h/", "h"),
])
def test_repo_name(url: str, name: str) -> None:
    assert G.repo_name(url) == name


def test_path_must_stay_inside_the_repository() -> None:
    assert _clean_path("deploy/prod/") == "deploy/prod"
    assert _clean_path("") == "."
    for bad in ("/etc", "../x", "a/../../b"):
        with pytest.raises(InvalidArgument, match="inside the repository"):
            _clean_path(bad)
    with pytest.raises(InvalidArgument, match="-f /etc/compose.yaml must be inside the repository"):
        GitOps(None, Source("https://h/r.git", files=["/etc/compose.yaml"]))


def test_compose_files_never_from_a_parent(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(GOOD)
    sub = tmp_path / "sub"
    sub.mkdir()
    with pytest.raises(InvalidArgument, match="no compose file"):
        compose_files(sub, [])
    (sub / "docker-compose.yml").write_text(GOOD)
    (sub / "compose.override.yaml").write_text("services: {}\n")
    assert compose_files(sub, []) == [str(sub / "docker-compose.yml"), str(sub / "compose.override.yaml")]
    assert compose_files(sub, ["x.yaml"]) == [str(sub / "x.yaml")]


# ---------------------------------------------------------------- the mirror, on real repositories


def test_mirror_fetch_checkout_force_push(tmp_path: Path) -> None:
    src = tmp_path / "src"
    first = commit(src, {"compose.yaml": GOOD, "old.txt": "x"}, "first")
    m = G.Mirror(str(src), None, tmp_path / "m")
    c = m.fetch()
    assert (c.sha, c.subject, c.short) == (first, "first", first[:12])
    tree, index = tmp_path / "tree", tmp_path / "tree.index"
    m.checkout(c.sha, tree, index)
    assert sorted(p.name for p in tree.iterdir()) == ["compose.yaml", "old.txt"]

    second = commit(src, {"old.txt": None, "new.txt": "y"}, "second")
    assert m.fetch().sha == second
    (tree / "junk").write_text("left by someone")
    (tree / ".wharf" / "configs").mkdir(parents=True)
    (tree / ".wharf" / "configs" / "c").write_text("apply's")
    m.checkout(second, tree, index)
    assert sorted(p.name for p in tree.iterdir()) == [".wharf", "compose.yaml", "new.txt"]

    m.pin(second)
    git(src, "reset", "-q", "--hard", first)  # a rewind (what a force-push looks like to us)
    assert m.fetch().sha == first
    m.checkout(first, tree, index)
    assert sorted(p.name for p in tree.iterdir()) == [".wharf", "compose.yaml", "old.txt"]
    subprocess.run(["git", "--git-dir", str(m.git_dir), "gc", "-q", "--prune=now"], check=True)
    m.checkout(second, tree, index)  # the pinned (deployed) commit outlives the rewind and a gc
    assert (tree / "new.txt").read_text() == "y"


def test_mirror_branches(tmp_path: Path) -> None:
    src = tmp_path / "src"
    commit(src, {"compose.yaml": GOOD}, "on main")
    git(src, "checkout", "-q", "-b", "prod")
    prod = commit(src, {"compose.yaml": GOOD + "# prod\n"}, "on prod")
    git(src, "checkout", "-q", "main")
    assert G.Mirror(f"file://{src}", "prod", tmp_path / "m1").fetch().sha == prod
    with pytest.raises(NotFound, match="branch nope not found"):
        G.Mirror(str(src), "nope", tmp_path / "m2").fetch()


def test_fetch_errors_say_what_is_wrong(tmp_path: Path) -> None:
    from runtime.errors import RuntimeFailure

    git(tmp_path, "init", "-q", "empty")
    with pytest.raises(NotFound, match="has no default branch"):
        G.Mirror(str(tmp_path / "empty"), None, tmp_path / "m1").fetch()
    (tmp_path / "plain").mkdir()
    with pytest.raises(RuntimeFailure, match="does not appear to be a git repository"):
        G.Mirror(str(tmp_path / "plain"), None, tmp_path / "m2").fetch()


def test_ssh_never_gets_a_terminal_to_prompt_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git (and so ssh) runs in a session of its own: no controlling terminal to ask a question on."""
    from runtime.errors import RuntimeFailure

    ssh = tmp_path / "fake-ssh"
    ssh.write_text("#!/bin/sh\nawk '{print $6}' /proc/$$/stat > \"$SIDFILE\"\nexit 255\n")
    ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(ssh))
    monkeypatch.setenv("SIDFILE", str(tmp_path / "sid"))
    with pytest.raises(RuntimeFailure, match="Could not read from remote repository"):
        G.Mirror("ssh://git@127.0.0.1/org/shop.git", "main", tmp_path / "m").fetch()
    assert int((tmp_path / "sid").read_text()) != os.getsid(0)


def test_fetch_error_names_the_repository_without_credentials(tmp_path: Path) -> None:
    from runtime.errors import RuntimeFailure

    m = G.Mirror(f"file://user:hunter2@{tmp_path}/missing", None, tmp_path / "m")
    with pytest.raises(RuntimeFailure) as e:
        m.fetch()
    assert "hunter2" not in str(e.value) and "fetch of" in str(e.value)


# ---------------------------------------------------------------- validation and state (no engine needed)


def test_bad_first_commit_is_reported_with_file_line_and_commit(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "shop"
    bad = commit(src, {"deploy/compose.yaml": BAD}, "typo")
    ops = GitOps(None, Source(str(src), path="deploy"))
    out = ops.sync()
    assert out.commit is None and not out.ok
    text = str(out.errors[0])
    assert f"commit {bad[:12]} ('typo') cannot be deployed, nothing is deployed" in text
    assert "compose.yaml:4" in text and "comand" in text and str(root) not in text
    dep = S.load(ops.id)
    assert dep is not None and dep.head == bad and dep.commit is None and "comand" in dep.head_error
    assert not (ops.dir / "staging").exists() and not (ops.dir / "tree").exists()


def test_validate_reports_the_deployed_commit(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "shop"
    bad = commit(src, {"compose.yaml": "services:\n  web: {image: busybox, ports: ['x:y']}\n"}, "ports")
    ops = GitOps(None, Source(str(src)))
    with pytest.raises(InvalidArgument) as e:
        ops.validate(ops.mirror.fetch(), "ab" * 20)
    assert str(e.value).startswith(f"commit {bad[:12]} ('ports') cannot be deployed, the stack is left at abababababab")
    assert "compose.yaml:2" in str(e.value)


def test_missing_compose_file_at_path(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "shop"
    commit(src, {"README": "no compose here"}, "empty")
    out = GitOps(None, Source(str(src), path="deploy")).sync()
    assert "no compose file (compose.yaml, docker-compose.yml) in deploy" in str(out.errors[0])


def test_deployment_ids_and_state(tmp_path: Path, root: Path) -> None:
    a = GitOps(None, Source("https://tok@h/org/shop.git", "main"))
    b = GitOps(None, Source("https://other@h/org/shop.git", "main"))
    c = GitOps(None, Source("https://h/org/shop.git", "main", path="deploy"))
    assert a.id == b.id != c.id and a.id.startswith("shop-")  # credentials are not part of the key
    dep = S.Deployment(a.id, G.redact(a.url), "main", ".", project="shop", commit="c" * 40, deployed_at=5.0)
    dep.save()
    S.Deployment(c.id, G.redact(c.url), "main", "deploy", project="shop", commit="d" * 40, deployed_at=9.0).save()
    (S.gitops_dir() / "garbage").mkdir()
    (S.gitops_dir() / "garbage" / "state.json").write_text("{not json")
    assert [d.id for d in S.all_deployments()] == sorted([a.id, c.id])
    assert S.load(a.id) == dep
    assert S.deployed("shop").commit == "d" * 40 and S.deployed("nothing") is None
    assert "tok" not in (S.gitops_dir() / a.id / "state.json").read_text()
    assert (S.gitops_dir().stat().st_mode & 0o777) == 0o700  # clones of private repositories live here
    assert not list((S.gitops_dir() / a.id).glob("*.tmp"))


# ---------------------------------------------------------------- the CLI


def wharf(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler.cli.app", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=60)


def test_cli_errors_and_status(tmp_path: Path, root: Path) -> None:
    env = {"WHARF_ROOT": str(root)}
    r = wharf("gitops", "status", "--format", "json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == []
    src = tmp_path / "shop"
    sha = commit(src, {"compose.yaml": BAD}, "bad")
    r = wharf("gitops", str(src), "--interval", "soon", env=env)
    assert r.returncode == 1 and "--interval: invalid duration 'soon'" in r.stderr
    r = wharf("gitops", str(src), "--path", "../etc", "--once", env=env)
    assert r.returncode == 1 and "inside the repository" in r.stderr
    r = wharf("gitops", str(src), "--once", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"wharf: error: commit {sha[:12]} ('bad') cannot be deployed" in r.stderr
    assert "compose.yaml:4" in r.stderr
    rows = json.loads(wharf("gitops", "status", "--format", "json", env=env).stdout)
    assert [(x["commit"], x["head"], x["status"]) for x in rows] == [(None, sha, "new")]
    r = wharf("gitops", "forget", "-p", "nope", env=env)
    assert r.returncode == 1 and "no gitops deployment of project nope" in r.stderr
    r = wharf("gitops", "forget", "-p", rows[0]["id"], env=env)
    assert r.returncode == 0 and f"forgot {src}" in r.stdout
    assert json.loads(wharf("gitops", "status", "--format", "json", env=env).stdout) == []
    assert not (root / "reconciler" / "gitops" / rows[0]["id"]).exists()


def test_a_loader_crash_on_a_commit_is_a_refusal_not_a_traceback(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "shop"
    sha = commit(src, {"compose.yaml": "services: [web]\n"}, "a list")
    out = GitOps(None, Source(str(src))).sync()
    assert out.commit is None and len(out.errors) == 1
    assert isinstance(out.errors[0], InvalidArgument)
    assert str(out.errors[0]).startswith(f"commit {sha[:12]} ('a list') cannot be deployed, nothing is deployed: ")


# ---------------------------------------------------------------- waking on a local commit


def test_local_git_dir(tmp_path: Path) -> None:
    from reconciler.gitops.trigger import local_git_dir

    src = tmp_path / "src"
    commit(src, {"compose.yaml": GOOD}, "one")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    assert local_git_dir(str(src)) == src / ".git"
    assert local_git_dir(f"file://{src}") == src / ".git"
    assert local_git_dir(str(bare)) == bare
    assert local_git_dir(str(tmp_path)) is None
    assert local_git_dir("https://h/r.git") is None and local_git_dir("git@h:r.git") is None


def test_ref_watcher_wakes_on_commit_not_on_add(tmp_path: Path) -> None:
    import threading

    from reconciler.gitops.trigger import RefWatcher

    src = tmp_path / "src"
    commit(src, {"compose.yaml": GOOD}, "one")
    wake = threading.Event()
    w = RefWatcher(src / ".git", wake)
    w.start()
    try:
        (src / "x").write_text("x")
        git(src, "add", "x")  # the index changes, no branch moves
        assert not wake.wait(0.5)
        git(src, "commit", "-qm", "two")
        assert wake.wait(10)
        wake.clear()
        git(src, "pack-refs", "--all")  # packed-refs
        assert wake.wait(10)
    finally:
        w.stop()


# ---------------------------------------------------------------- network transports, on loopback only


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """`git daemon` serving the repositories under `base` on 127.0.0.1; yields git://127.0.0.1:PORT."""
    import socket

    port = free_port()
    d = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={port}",
                          f"--base-path={base}", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and d.poll() is None, "git daemon did not start"
                time.sleep(0.02)
        yield f"git://127.0.0.1:{port}"
    finally:
        d.terminate()
        d.wait(10)


def test_fetch_over_git_daemon(tmp_path: Path, root: Path) -> None:
    """git:// from `git daemon` on 127.0.0.1: the network path of the mirror, then a refused commit."""
    src = tmp_path / "srv" / "shop"
    first = commit(src, {"compose.yaml": GOOD}, "first")
    with git_daemon(tmp_path / "srv") as base:
        url = f"{base}/shop"
        assert G.Mirror(url, "main", tmp_path / "m").fetch().sha == first
        bad = commit(src, {"compose.yaml": BAD}, "typo")
        out = GitOps(None, Source(url, "main")).sync()
        assert out.head.sha == bad and f"commit {bad[:12]} ('typo') cannot be deployed" in str(out.errors[0])


def test_http_auth_failure_never_shows_the_password(tmp_path: Path) -> None:
    """A loopback HTTP server that refuses every request with 401: git's error is shown, masked."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from runtime.errors import RuntimeFailure

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://deploy:hunter2@127.0.0.1:{srv.server_address[1]}/org/shop.git"
        with pytest.raises(RuntimeFailure) as e:
            G.Mirror(url, "main", tmp_path / "m").fetch()
        text = str(e.value)
        assert "hunter2" not in text and "deploy" not in text
        assert f"fetch of http://***@127.0.0.1:{srv.server_address[1]}/org/shop.git (branch main) failed" in text
    finally:
        srv.shutdown()
        srv.server_close()



# ---------------------------------------------------------------- the push webhook


def test_parse_listen() -> None:
    from reconciler.gitops.hook import parse_listen

    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("9000", "host:", "h:99999", "h:x"):
        with pytest.raises(InvalidArgument, match="HOST:PORT"):
            parse_listen(bad)


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_hook_server_signatures() -> None:
    import hashlib
    import hmac
    import threading
    import urllib.error
    import urllib.request

    from reconciler.gitops.hook import HookServer

    wake = threading.Event()
    hook = HookServer("127.0.0.1:0", wake, b"s3cret")
    hook.start()
    try:
        body = b'{"ref": "refs/heads/main"}'
        good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert post(hook.url, body) == 401 and not wake.is_set()
        assert post(hook.url, body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}) == 401
        assert post(hook.url, body + b" ", {"X-Hub-Signature-256": good}) == 401  # another body
        assert post(hook.url, body, {"X-Gitlab-Token": "nope"}) == 401 and not wake.is_set()
        assert post(hook.url, body, {"X-Hub-Signature-256": good}) == 202 and wake.is_set()
        wake.clear()
        assert post(hook.url, body, {"X-Gitlab-Token": "s3cret"}) == 202 and wake.is_set()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(hook.url, timeout=10)
        assert e.value.code == 405
        assert hook.hits == 2
    finally:
        hook.stop()
    open_hook = HookServer(":0", wake)
    open_hook.start()
    try:
        assert open_hook.url.startswith("http://127.0.0.1:") and post(open_hook.url, b"") == 202
    finally:
        open_hook.stop()


def test_cli_listen_needs_a_watcher(tmp_path: Path, root: Path) -> None:
    src = tmp_path / "shop"
    commit(src, {"compose.yaml": GOOD}, "one")
    r = wharf("gitops", str(src), "--once", "--listen", ":0", env={"WHARF_ROOT": str(root)})
    assert r.returncode == 1 and "--listen needs a watcher" in r.stderr


def test_watcher_reports_a_bad_head_once_and_stops(tmp_path: Path, root: Path) -> None:
    """The loop in a thread (no signal handlers there): an invalid head is said once, then a stop."""
    import io
    import threading

    from rich.console import Console

    from reconciler.gitops.watcher import run

    src = tmp_path / "shop"
    bad = commit(src, {"compose.yaml": BAD}, "typo")
    buf = io.StringIO()
    ops = GitOps(None, Source(str(src)), out=Console(file=buf, width=300))
    stop = threading.Event()
    t = threading.Thread(target=run, args=(ops, 0.02, stop))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while (dep := S.load(ops.id)) is None or dep.checked_at == 0 or buf.getvalue().count("watching") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first = dep.checked_at
        while S.load(ops.id).checked_at == first:  # at least one more pass
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(10)
    text = buf.getvalue()
    assert not t.is_alive() and text.count(f"commit {bad[:12]}") == 1, text
    assert "gitops stopped; the stack keeps running" in text and "when the branch moves" in text


# ---------------------------------------------------------------- rebuilds when build inputs change


def test_build_fingerprints_follow_the_inputs(tmp_path: Path, root: Path) -> None:
    from reconciler.gitops.builds import fingerprints, force_builds

    src = tmp_path / "shop"
    compose = """services:
  a: {build: ./a}
  b: {build: {context: ./b, dockerfile: ../Dockerfile.b, args: {V: '1'}}}
  c: {build: ./generated}
  d: {image: busybox:latest}
"""
    commit(src, {"compose.yaml": compose, "a/Dockerfile": "FROM busybox\n", "a/f": "1",
                 "b/f": "1", "Dockerfile.b": "FROM busybox\n", "README": "x"}, "one")
    ops = GitOps(None, Source(str(src)))

    def prints() -> dict[str, str]:
        head = ops.mirror.fetch()
        ops.mirror.checkout(head.sha, ops.tree, ops.dir / "tree.index")
        (ops.tree / "generated").mkdir(exist_ok=True)  # a context git does not know: compose's rule
        return fingerprints(ops.mirror, head.sha, ops.tree, ops.load(ops.tree).desired)

    one = prints()
    assert sorted(one) == ["shop-a:latest", "shop-b:latest"]
    commit(src, {"README": "y"}, "docs")
    assert prints() == one
    commit(src, {"a/f": "2"}, "a changes")
    two = prints()
    assert two["shop-a:latest"] != one["shop-a:latest"] and two["shop-b:latest"] == one["shop-b:latest"]
    commit(src, {"Dockerfile.b": "FROM busybox\nRUN true\n"}, "b's Dockerfile, outside its context")
    three = prints()
    assert three["shop-b:latest"] != two["shop-b:latest"] and three["shop-a:latest"] == two["shop-a:latest"]
    commit(src, {"compose.yaml": compose.replace("V: '1'", "V: '2'")}, "b's args")
    four = prints()
    assert four["shop-b:latest"] != three["shop-b:latest"]

    desired = ops.load(ops.tree).desired
    assert force_builds(desired, four, three) == ["shop-b:latest"]
    assert desired.images["shop-b:latest"].pull_policy == "build"
    assert desired.images["shop-a:latest"].pull_policy == "missing"
