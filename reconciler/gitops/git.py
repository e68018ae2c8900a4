"""The git side of `wharf gitops`, through the `git` command: a bare mirror of one branch
(fetched shallow, forced: a force-push or rewind is just a new head) and checkouts of an
exact commit into a work tree with its own index. URLs are shown with their credentials
masked, also in git's own error messages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import InvalidArgument, NotFound, RuntimeFailure

HEAD_REF = "refs/wharf/head"
DEPLOYED_REF = "refs/wharf/deployed"  # keeps the deployed commit's objects from git gc
FETCH_TIMEOUT = 300.0
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s]+)@")
_SCP_LIKE = re.compile(r"^[^/:]+:(?!//)")  # host:path or user@host:path (git's rule: ':' before any '/')
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_REF_BAD = frozenset(" ~^:?*[\\\x7f")


def redact(text: str) -> str:
    """Mask credentials in every URL of `text`: http(s)://TOKEN@ and user:PASSWORD@ become ***."""
    def mask(m: re.Match) -> str:
        scheme, info = m.group(1), m.group(2)
        if scheme.lower().startswith("http") or ":" not in info:
            keep = "" if scheme.lower().startswith("http") else info
            return f"{scheme}{keep or '***'}@"
        return f"{scheme}{info.split(':', 1)[0]}:***@"
    return _USERINFO.sub(mask, text)


def check_branch(branch: str | None) -> str | None:
    """A branch name git accepts (git check-ref-format's rules), else InvalidArgument."""
    if branch is None:
        return None
    if (not branch or branch.startswith(("-", "/")) or branch.endswith(("/", ".", ".lock")) or ".." in branch
            or "@{" in branch or "//" in branch or any(c in _REF_BAD or ord(c) < 32 for c in branch)):
        raise InvalidArgument(f"--branch {branch!r} is not a valid branch name", hint="e.g. main, release/1.2")
    return branch


def resolve_repo(repo: str) -> str:
    """A URL as git takes it: local paths made absolute (git runs elsewhere), URLs as given."""
    if not repo:
        raise InvalidArgument("no repository given", hint="pass a path or a URL: wharf gitops REPO")
    if repo.startswith("-"):  # never an option of git's
        raise InvalidArgument(f"repository {repo!r} cannot start with '-'", hint="for a local path: ./" + repo)
    if "://" in repo or (_SCP_LIKE.match(repo) and not Path(repo).exists()):
        return repo
    p = Path(repo).expanduser()
    if not p.exists():
        raise NotFound(f"repository {repo} not found", hint="pass a local path, file://, ssh:// or https:// URL")
    return str(p.absolute())


def repo_name(url: str) -> str:
    """The directory `git clone URL` would make: the last path part without .git."""
    tail = re.split(r"[/:]", redact(url).rstrip("/"))[-1].removesuffix(".git")
    name = re.sub(r"[^A-Za-z0-9._-]", "-", tail).strip(".-")
    return name or "repo"


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:12]


class Mirror:
    """A bare repository under `root` holding the fetched head of one branch of `url`."""

    def __init__(self, url: str, branch: str | None, root: Path) -> None:
        self.url, self.branch, self.root = url, check_branch(branch), root
        self.git_dir = root / "repo.git"

    @property
    def where(self) -> str:
        return f"{redact(self.url)} ({'branch ' + self.branch if self.branch else 'default branch'})"

    def _git(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0,
             what: str = "git", cwd: Path | None = None) -> str:
        full = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
        full.pop("GIT_DIR", None)
        full.pop("GIT_WORK_TREE", None)
        try:
            # its own session: no controlling terminal, so ssh fails on a host-key or passphrase prompt
            # instead of waiting for an answer (GIT_TERMINAL_PROMPT=0 does that for git's own prompts)
            r = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], capture_output=True, text=True,
                               env=full, stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd, start_new_session=True)
        except FileNotFoundError:
            raise RuntimeFailure("git is not installed", hint="apt-get install git") from None
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"{what} of {self.where} timed out after {timeout:.0f}s") from None
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("hint:")]
            fatal = [ln.split(": ", 1)[1] for ln in lines if ln.startswith(("fatal: ", "error: "))]
            msg = redact("; ".join(fatal or lines[-3:]) or f"git exited with {r.returncode}")
            if "couldn't find remote ref" in msg:
                if self.branch is None:
                    raise NotFound(f"{redact(self.url)} has no default branch (no commit yet?)",
                                   hint="push a commit, or name the branch with --branch")
                raise NotFound(f"branch {self.branch} not found in {redact(self.url)}",
                               hint="check --branch (default: the repository's default branch)")
            raise RuntimeFailure(f"{what} of {self.where} failed: {msg}")
        return r.stdout

    def fetch(self) -> Commit:
        """Fetch the branch head (shallow) and return it."""
        if not (self.git_dir / "HEAD").is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / "repo.git.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["git", "init", "-q", "--bare", str(tmp)], check=True, capture_output=True,
                           env={**os.environ, "LC_ALL": "C"})
            tmp.rename(self.git_dir)
        src = f"refs/heads/{self.branch}" if self.branch else "HEAD"
        self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--depth=1", self.url,
                  f"+{src}:{HEAD_REF}", timeout=FETCH_TIMEOUT, what="fetch")
        return self.commit(HEAD_REF)

    def commit(self, rev: str) -> Commit:
        out = self._git("log", "-1", "--format=%H%n%s", rev, "--", what="reading the commit").split("\n", 1)
        sha = out[0].strip()
        if not _SHA.match(sha):
            raise RuntimeFailure(f"cannot read commit {rev} of {self.where}")
        return Commit(sha, out[1].strip() if len(out) > 1 else "")

    def pin(self, sha: str) -> None:
        """Keep commit `sha` (the deployed one) whatever the branch does next."""
        self._git("update-ref", DEPLOYED_REF, sha, what="recording the deployed commit")

    def object_ids(self, sha: str, paths: list[str]) -> dict[str, str]:
        """path -> id of the tree or blob at that path in commit `sha` (paths not in it are left out)."""
        if not paths:
            return {}
        lines = self._git_input("cat-file", "--batch-check=%(objectname)",
                                text="".join(f"{sha}:{p}\n" for p in paths)).splitlines()
        return {p: line for p, line in zip(paths, lines, strict=False) if _SHA.match(line)}

    def _git_input(self, *args: str, text: str) -> str:
        r = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], input=text, capture_output=True,
                           text=True, env={**os.environ, "LC_ALL": "C"}, timeout=60)
        if r.returncode != 0:
            raise RuntimeFailure(f"reading objects of {self.where} failed: {redact(r.stderr.strip())}")
        return r.stdout

    def checkout(self, sha: str, work_tree: Path, index: Path) -> None:
        """Make `work_tree` hold exactly the files of commit `sha`; anything else in it is removed
        but .wharf/ (where apply writes inline configs and secrets)."""
        work_tree.mkdir(parents=True, exist_ok=True)
        env = {"GIT_INDEX_FILE": str(index)}
        self._git("--work-tree", str(work_tree), "read-tree", "--reset", "-u", sha, env=env, what="checkout",
                  cwd=work_tree)
        self._git("--work-tree", str(work_tree), "clean", "-ffdqx", "-e", ".wharf", env=env, what="checkout",
                  cwd=work_tree)


__all__ = ["Commit", "Mirror", "check_branch", "redact", "repo_name", "resolve_repo"]
