"""`wharf gitops`: one sync pass of a compose project deployed from a git branch.

One pass (level-triggered, like `wharf watch`): fetch the branch head; when it moved, check it
out into a scratch tree and load the project there — an invalid spec is reported with the
commit and file:line and the running stack is left as it is; a valid one becomes the checked
out tree (a stable path, so bind mounts and build contexts keep their place); then apply that
tree exactly as `wharf apply` would (same planner, labels, output). Every pass re-reads the
live state, so the same pass heals drift. What was deployed is in state.json (state.py)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.errors import InvalidArgument, RuntimeFailure, WharfError

from . import state as S
from .builds import fingerprints, force_builds
from .git import Commit, Mirror, redact, repo_name, resolve_repo


@dataclass
class Source:
    """What to deploy: a branch of a repository, the project at `path` in it, and the usual
    project options (-f relative to `path`; --env-file relative to it unless absolute)."""

    repo: str
    branch: str | None = None
    path: str = "."
    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    profiles: list[str] = field(default_factory=list)
    ignore_unsupported: bool = False
    env_file: str | None = None


@dataclass
class Outcome:
    """One pass: the head seen, what is deployed, what changed, and the errors (newest last)."""

    head: Commit | None = None
    commit: str | None = None
    new_commit: bool = False
    plan: Any = None
    result: Any = None
    seconds: float = 0.0
    errors: list[WharfError] = field(default_factory=list)
    retry: bool = False  # a fetch or an apply failed: worth trying again (an invalid head is not)

    @property
    def ok(self) -> bool:
        return not self.errors


def esc(text: str) -> str:
    """User text (commit subjects, errors quoting YAML) printed through rich, brackets and all."""
    from rich.markup import escape

    return escape(text)


def _clean_path(path: str, flag: str = "--path") -> str:
    p = PurePosixPath(path or ".")
    if p.is_absolute() or ".." in p.parts:
        raise InvalidArgument(f"{flag} {path} must be inside the repository",
                              hint="give it relative to the repository root (-f: to --path), e.g. deploy/prod")
    return str(p)


def compose_files(project_dir: Path, files: list[str]) -> list[str]:
    """-f files relative to the project dir; else its compose.yaml (+ override), never a parent's."""
    from reconciler.spec.files import DEFAULT_FILES, OVERRIDE_FILES

    if files:
        return [str(project_dir / f) for f in files]
    for name in DEFAULT_FILES:
        if (project_dir / name).is_file():
            return [str(project_dir / name)] + [str(project_dir / o) for o in OVERRIDE_FILES
                                                if (project_dir / o).is_file()][:1]
    raise InvalidArgument(f"no compose file (compose.yaml, docker-compose.yml) in {project_dir}",
                          hint="commit one, or point --path / -f at it")


def load_target(project_dir: Path, source: Source, *, quiet: bool = False, cached: bool = False) -> Any:
    """The Target of the project checked out at `project_dir`, with the source's options; with
    `cached`, through the project cache of `wharf apply` (reconciler.target_cache)."""
    from reconciler.cli.project import ProjectOptions
    from reconciler.cli.project import load_target as load_options
    from reconciler.reconcile import Target

    env_file = source.env_file
    if env_file and not Path(env_file).is_absolute():
        env_file = str(project_dir / env_file)
    opts = ProjectOptions(compose_files(project_dir, source.files), source.project_name, list(source.profiles),
                          source.ignore_unsupported, env_file)
    return load_options(opts, cached=True) if cached else Target.from_loaded(opts.load(quiet=quiet))


class GitOps:
    def __init__(self, engine: Any, source: Source, *, prune: bool = False, timeout: float = 300.0,
                 wait: bool = False, workers: int = 4, out: Any = None, progress: str = "plain") -> None:
        self.engine, self.source = engine, source
        self.prune, self.timeout, self.wait, self.workers, self.progress = prune, timeout, wait, workers, progress
        self.url = resolve_repo(source.repo)
        self.path = _clean_path(source.path)
        for f in source.files:
            _clean_path(f, "-f")
        self.name = repo_name(self.url)
        self.id = S.deployment_id(self.name, [redact(self.url), source.branch, self.path, list(source.files),
                                              source.project_name])
        self.dir = S.gitops_dir() / self.id
        self.mirror = Mirror(self.url, source.branch, self.dir)
        self.tree = self.dir / "tree" / self.name
        self.out = out
        self.bad: dict[str, WharfError] = {}  # head sha -> why it is not deployable
        # --once reuses the project cache of `wharf apply` (no YAML, no pydantic when nothing changed);
        # a watcher loads each pass instead, so that cached warnings are not repeated every interval
        self.cached = True

    # ------------------------------------------------------------ output

    def _con(self) -> Any:
        if self.out is None:
            from reconciler.cli.render import console

            self.out = console()
        return self.out

    def say(self, text: str) -> None:
        self._con().print(text)

    def _reporter(self) -> Any:
        import contextlib
        import sys

        from reconciler.cli.render import LineReporter, ProgressReporter

        if self.progress == "plain" or (self.progress == "auto" and not sys.stdout.isatty()):
            return contextlib.nullcontext(LineReporter())
        return ProgressReporter(self._con())

    # ------------------------------------------------------------ loading

    def project_dir(self, root: Path) -> Path:
        return root if self.path == "." else root / self.path

    def load(self, root: Path, quiet: bool = False, cached: bool = False) -> Any:
        return load_target(self.project_dir(root), self.source, quiet=quiet, cached=cached)

    def validate(self, c: Commit, deployed: str | None) -> None:
        """Load commit `c` from a scratch checkout; raise its spec error naming the commit and file:line."""
        scratch = self.dir / "staging"
        shutil.rmtree(scratch, ignore_errors=True)
        root = scratch / self.name
        try:
            self.mirror.checkout(c.sha, root, self.dir / "staging.index")  # git's errors are not the commit's
            try:
                self.load(root, quiet=True)
            except Exception as e:  # a commit is untrusted input: even a loader crash must not stop a watcher
                self._refuse(c, deployed, root, e)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            (self.dir / "staging.index").unlink(missing_ok=True)

    @staticmethod
    def _refuse(c: Commit, deployed: str | None, root: Path, e: Exception) -> None:
        kept = f"the stack is left at {deployed[:12]}" if deployed else "nothing is deployed"
        text = str(e) if isinstance(e, WharfError) else f"the spec could not be loaded ({type(e).__name__}: {e})"
        for form in sorted({str(root), os.path.relpath(root)}, key=len, reverse=True):  # as the loader names them
            text = text.replace(f"{form}/", "").replace(form, ".")  # -> paths in the repository
        raise InvalidArgument(f"commit {c.short} ({c.subject!r}) cannot be deployed, {kept}: {text}") from None

    # ------------------------------------------------------------ one pass

    def sync(self) -> Outcome:
        """Fetch, move to a new valid head, apply what is checked out; errors go to the Outcome."""
        t0 = time.monotonic()
        out = Outcome()
        with S.locked(self.dir):
            dep = S.load(self.id) or S.Deployment(self.id, redact(self.url), self.source.branch, self.path,
                                                 list(self.source.files))
            dep.checked_at = time.time()
            dep.source = {**asdict(self.source), "repo": redact(self.url)}
            dep.project_dir = str(self.project_dir(self.tree))
            self._advance(dep, out)
            out.commit = dep.commit
            if dep.commit:
                self._apply(dep, out)
            dep.save()
        out.seconds = time.monotonic() - t0
        return out

    def _advance(self, dep: S.Deployment, out: Outcome) -> None:
        try:
            out.head = head = self.mirror.fetch()
            dep.head, dep.fetch_error = head.sha, ""
        except WharfError as e:
            head, dep.fetch_error = None, str(e)
            out.errors.append(e)
            out.retry = True
        if head is not None and head.sha == dep.commit:
            dep.head_error = ""
        elif head is not None:
            err = self.bad.get(head.sha) or self._check(head, dep.commit)
            if err is not None:
                dep.head_error = str(err)
                out.errors.append(err)
            else:
                self._move(dep, head)
                out.new_commit = True
        if dep.commit and not (dep.tree_ok and self.tree.is_dir()):  # interrupted while changing it, or removed
            self.mirror.checkout(dep.commit, self.tree, self.dir / "tree.index")
            dep.tree_ok = True

    def _check(self, head: Commit, deployed: str | None) -> InvalidArgument | None:
        try:
            self.validate(head, deployed)
        except InvalidArgument as e:
            self.bad[head.sha] = e
            return e
        return None

    def _move(self, dep: S.Deployment, head: Commit) -> None:
        """Check the (valid) head out into the deployment's tree."""
        was = f", was {dep.commit[:12]}: applying" if dep.commit else ""
        self.say(esc(f"{'new' if dep.commit else 'deploying'} commit {head.short} ({head.subject!r}) "
                     f"{'on' if dep.commit else 'of'} {self.mirror.where}{was}"))
        dep.tree_ok = False
        dep.save()
        self.mirror.checkout(head.sha, self.tree, self.dir / "tree.index")
        self.mirror.pin(head.sha)
        dep.commit, dep.subject, dep.tree_ok, dep.head_error, dep.status = head.sha, head.subject, True, "", "applying"
        dep.save()

    def _apply(self, dep: S.Deployment, out: Outcome) -> None:
        from reconciler import reconcile as R

        try:
            target = self.load(self.tree, quiet=not out.new_commit, cached=self.cached)
            dep.project = target.desired.project
            built = fingerprints(self.mirror, dep.commit, self.tree, target.desired)
            rebuild = force_builds(target.desired, built, dep.builds)
            if rebuild and dep.builds:
                self.say(esc(f"build inputs changed at {dep.commit[:12]}: building {', '.join(rebuild)}"))
            with self._reporter() as reporter:
                out.plan, out.result = R.apply(self.engine, target, prune=self.prune, timeout=self.timeout,
                                               wait=self.wait, reporter=reporter, workers=self.workers)
        except WharfError as e:
            dep.status, dep.error = "failed", str(e)
            out.errors.append(e)
            out.retry = True
            return
        if out.result.ok:
            if dep.status != "deployed" or out.new_commit:
                dep.deployed_at = time.time()
            dep.status, dep.error, dep.builds = "deployed", "", built
            return
        dep.status, dep.error = "failed", out.result.error_summary()
        out.retry = True
        out.errors.append(RuntimeFailure(f"apply of project {out.plan.project} at {dep.commit[:12]} did not "
                                         f"complete:\n  {out.result.error_summary()}",
                                         hint="it is retried at the next pass"))

    # ------------------------------------------------------------ reporting a pass

    def report(self, out: Outcome, *, once: bool, seen: set[str] | None = None) -> None:
        """Print what a pass did. Errors: --once leaves them to the caller; a watcher prints those
        the previous pass did not have (`seen`, updated here), so a lasting one is said once."""
        for w in out.plan.warnings if out.plan is not None and (out.new_commit or once) else []:
            self.say(f"[yellow]warning:[/] {esc(w)}")
        if not once:
            now = {str(e) for e in out.errors}
            for text in sorted(now - (seen or set())):
                self.say(f"[red]error:[/] {esc(text)}")
            if seen is not None:
                seen.clear()
                seen.update(now)
        if out.plan is None or out.result is None:
            return
        at = f"{out.commit[:12]}" if out.commit else "?"
        project = esc(out.plan.project)
        if not out.result.ok:
            return
        if out.new_commit:
            self.say(f"[green]Project {project}: deployed {at}[/] ({out.plan.summary()}) in {out.seconds:.2f}s")
        elif not out.plan.empty:
            self.say(f"drift: {out.plan.summary()} -> converged at {at} in {out.seconds:.2f}s")
        elif once and not out.errors:
            self.say(f"[green]Project {project} is up to date at {at}: nothing to do.[/]")


__all__ = ["GitOps", "Outcome", "Source", "compose_files", "load_target"]
