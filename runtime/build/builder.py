"""`build()`: run a Dockerfile's stages against the ImageStore, with a per-step cache.

Each stage is a state (image config + layer list + cache key) that every instruction
turns into the next: metadata instructions change the config only (history gets
`empty_layer`), RUN runs a container and commits its upper dir (run_step.py) in the
background while the next RUN already runs on top of that upper dir (state.PendingCommit),
COPY/ADD/WORKDIR write a layer tar straight into the content store (copy_step.py).
Images are only written when a step needs a rootfs and at the end; tags are set only
after every step succeeded. Like Docker's (non-BuildKit) builder, every stage up to the
target is built and leaves an untagged image.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform as host_platform
import posixpath
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runtime.build import copy_step, meta, run_step
from runtime.build import rootfs as rfs
from runtime.build.cache import BuildCache, Entry, rfc3339, step_key
from runtime.build.config_steps import expand_in, metadata
from runtime.build.context import BuildContext
from runtime.build.instructions import BuildPlan, Instruction, Stage, check_instruction, plan
from runtime.build.layer import LayerBuilder
from runtime.build.lexer import LexError, expand, expand_heredoc
from runtime.build.parser import parse
from runtime.build.state import DEFAULT_SHELL, PendingCommit, StageState
from runtime.errors import InvalidArgument, NotFound, RuntimeFailure, WharfError

PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
COMMENT = "wharf build"
_LIVE: list[set[str]] = []  # the step images of the builds running in this process
_LIVE_LOCK = threading.Lock()


def _arch() -> str:
    m = host_platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)


def platform_args() -> dict[str, str]:
    arch = _arch()
    plat = f"linux/{arch}"
    return {"BUILDPLATFORM": plat, "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": "",
            "TARGETPLATFORM": plat, "TARGETOS": "linux", "TARGETARCH": arch, "TARGETVARIANT": ""}


class Builder:
    def __init__(self, store: Any, context: BuildContext, build_plan: BuildPlan, *, tags: list[str],
                 build_args: dict[str, str], target: str | None, labels: dict[str, str], no_cache: bool,
                 pull: bool, progress: Callable[[str], None], network: str = "host") -> None:
        self.store = store
        self.ctx = context
        self.plan = build_plan
        self.tags = tags
        self.build_args = dict(build_args)
        self.target = target
        self.labels = labels
        self.no_cache = no_cache
        self.pull = pull
        self.network = network
        self.out = progress
        self.cache = BuildCache()
        self.used_args: set[str] = set()
        self.results: dict[int, StageState] = {}
        self.pulled: set[str] = set()
        self.step = 0
        self.total = 0
        self.intermediate: set[str] = set()  # images written for RUN/COPY rootfs, not asked for
        with _LIVE_LOCK:
            _LIVE.append(self.intermediate)
        self.states: list[StageState] = []
        self.written: list[Any] = []  # the stage images and the final one
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wharf-build-commit")
        self.escape = build_plan.dockerfile.escape

    # ------------------------------------------------------------------ driving

    def build(self) -> Any:
        self.ctx.load_digests(self.cache.root)
        try:
            image = self._build()
            self.ctx.save_digests(self.cache.root)
            return image
        finally:
            with _LIVE_LOCK:
                _LIVE[:] = [ids for ids in _LIVE if ids is not self.intermediate]
            for state in self.states:  # a failed build: finish (and cache) what was committing
                with contextlib.suppress(Exception):
                    self._settle(state)
            self.pool.shutdown(wait=True)
            from runtime.linux.cgroups import remove_parent_if_unused

            remove_parent_if_unused()  # the RUN steps' /wharf parent, unless containers live in it

    def _build(self) -> Any:
        df = self.plan.dockerfile
        for key in ("syntax", "check"):
            if key in df.directives:
                self.out(f"# {key}={df.directives[key]}: ignored (wharf builds with its own Dockerfile frontend)")
        for warning in df.warnings:
            self.out(f"[Warning] {warning}")
        meta_env = self._meta_args()
        last = self._target_index()
        stages = self.plan.stages[: last + 1]  # as Docker's builder: every stage up to the target
        self.total = sum(1 + len(s.instructions) for s in stages)
        for stage in stages:
            state = self.results[stage.index] = self._build_stage(stage, meta_env)
            if stage.index != last:  # each stage leaves an (untagged) image, as `docker build` does
                self.out(f" ---> {self._write(state).id.removeprefix('sha256:')[:12]}")
        state = self.results[last]
        if self.labels:
            state.cfg.setdefault("Labels", {}).update(self.labels)
        unused = sorted(k for k in self.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            self.out(f"[Warning] One or more build-args {unused} were not consumed")
        image = self._write(state)
        self._drop_intermediate()
        self.out(f"Successfully built {image.id.removeprefix('sha256:')[:12]}")
        for ref in self.tags:
            self.store.tag(image.id, ref)
            self.out(f"Successfully tagged {ref}")
        return self.store.resolve(image.id) if self.tags else image

    def _meta_args(self) -> dict[str, str]:
        env = platform_args()
        for inst in self.plan.meta_args:
            for key, default in inst.node.pairs:
                if key in self.build_args:
                    env[key] = self.build_args[key]
                    self.used_args.add(key)
                elif default is not None:
                    env[key] = self._expand(inst, default, env)
        return env

    def _target_index(self) -> int:
        if self.target is None:
            return len(self.plan.stages) - 1
        idx = self.plan.stage_index(self.target)
        if idx is None:
            names = [s.name for s in self.plan.stages if s.name]
            raise NotFound(f"target stage {self.target!r} could not be found",
                           hint=f"stages: {', '.join(names) or '(none named)'}")
        return idx

    def _announce(self, inst: Instruction, text: str | None = None) -> None:
        self.step += 1
        self.out(f"Step {self.step}/{self.total} : {text or inst.node.original}")

    # ------------------------------------------------------------------ stages

    def _build_stage(self, stage: Stage, meta_env: dict[str, str]) -> StageState:
        self._announce(stage.from_)
        base = self._expand(stage.from_, stage.base, meta_env)
        if stage.platform:
            wanted = self._expand(stage.from_, stage.platform, meta_env)
            if wanted != meta_env["TARGETPLATFORM"]:
                self.out(f"[Warning] FROM --platform={wanted}: wharf builds for {meta_env['TARGETPLATFORM']} only")
        state = self._from(stage, base)
        short = state.fs_image.removeprefix("sha256:")[:12] if state.fs_image else "scratch"
        self.out(f" ---> {short}")
        self.states.append(state)
        triggers = state.cfg.pop("OnBuild", None) or []
        if triggers and self.plan.stage_index(base) is None:
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for text in triggers:
                df = parse(text, name=f"ONBUILD trigger of {base}")
                for node in df.nodes:
                    inst = check_instruction(node, stage.from_.where, in_onbuild=True)
                    self._dispatch(state, inst, meta_env)
        for inst in stage.instructions:
            self._announce(inst)
            self._dispatch(state, inst, meta_env)
        self._settle(state)
        return state

    def _from(self, stage: Stage, base: str) -> StageState:
        if base.lower() == "scratch":
            config = {"architecture": _arch(), "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return StageState(config=config, layers=[], key=step_key("FROM", "scratch"), fs_image=None)
        dep = self.plan.stage_index(base)
        if dep is not None and dep < stage.index:
            prev = self.results[dep]
            return StageState(config=copy.deepcopy(prev.config), layers=list(prev.layers), key=prev.key,
                              fs_image=prev.fs_image, shell=list(prev.shell))
        image = self._image(stage.from_, base)
        config = copy.deepcopy(image.config)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        layers = [(d["digest"], diff) for d, diff in zip(image.layers, diff_ids, strict=False)]
        shell = config.get("config", {}).get("Shell") or list(DEFAULT_SHELL)
        return StageState(config=config, layers=layers, key=step_key("FROM", image.id), fs_image=image.id,
                          shell=list(shell))

    def _image(self, inst: Instruction, ref: str) -> Any:
        """An image by reference, pulled when missing (or always once with --pull)."""
        if not ref:
            raise inst.error("FROM needs an image name (it expanded to nothing)")
        if not self.pull or ref in self.pulled:
            try:
                return self.store.resolve(ref)
            except NotFound:
                pass
        try:
            from runtime.registry.client import pull
        except ImportError:
            raise NotFound(f"image {ref!r} not found", where=inst.where,
                           hint="load, import or bootstrap it first (wharf image bootstrap busybox)") from None
        self.out(f"Pulling {ref}")
        try:
            image = pull(self.store, ref)
        except WharfError as e:
            raise type(e)(f"FROM {ref}: {e.message}", where=inst.where, hint=e.hint) from None
        self.pulled.add(ref)
        return image

    # ------------------------------------------------------------------ instructions

    def _expand(self, inst: Instruction, text: str, env: dict[str, str]) -> str:
        return expand_in(inst, text, env, self.escape)

    def _dispatch(self, state: StageState, inst: Instruction, meta_env: dict[str, str]) -> None:
        try:
            self._dispatch_one(state, inst, meta_env)
        except WharfError as e:
            if e.where is None:  # name the Dockerfile line on every error of a step
                e.where = inst.where
            raise
        except OSError as e:  # the kernel said no (mount, disk full...): one line, not a traceback
            raise RuntimeFailure(f"{inst.cmd.upper()}: {e.strerror or e}", where=inst.where) from None

    def _dispatch_one(self, state: StageState, inst: Instruction, meta_env: dict[str, str]) -> None:
        cmd = inst.cmd
        if cmd == "run":
            self._run(state, inst)
        elif cmd in ("copy", "add"):
            self._copy(state, inst)
        elif cmd == "workdir":
            self._workdir(state, inst)
        elif cmd == "arg":
            self._arg(state, inst, meta_env)
        else:
            text, change = metadata(state, inst, self.escape)
            self._step(state, inst, text, None, None, change)

    def _step(self, state: StageState, inst: Instruction, text: str, extra: str | None,
              produce: Callable[[], tuple[tuple[str, str] | None, str | None]] | None,
              change: Callable[[], None] | None = None) -> None:
        """One cached step: `text` is the instruction after substitution; `produce` makes the layer
        (or None) and may name an image that has exactly the new layers; `change` applies the config
        change (pure, so it also runs on cache hits)."""
        key = step_key(state.key, text, extra)
        entry = None if self.no_cache else self.cache.get(key, self.store.content)
        fs_image = state.fs_image
        layer: tuple[str, str] | PendingCommit | None
        if entry is not None:
            self.out(" ---> Using cache")
            created, layer = entry.created, entry.layer
            if layer is not None:
                fs_image = None
        else:
            layer, fs_image = produce() if produce is not None else (None, state.fs_image)
            created = rfc3339(time.time())
            if isinstance(layer, PendingCommit):  # the cache entry is written when it is settled
                layer.cache_key, layer.created, layer.index = key, created, len(state.layers)
                state.pending = layer
            else:
                self.cache.put(key, Entry(created=created, layer=layer))
        if change is not None:
            change()
        history: dict[str, Any] = {"created": created, "created_by": text, "comment": COMMENT}
        if layer is None:
            history["empty_layer"] = True
        else:
            state.layers.append(layer if isinstance(layer, tuple) else ("", ""))
            self._set_diff_ids(state)
        state.fs_image = fs_image
        state.config.setdefault("history", []).append(history)
        state.config["created"] = created
        # the next step's key depends on this step's result (its recorded time identifies it): when a
        # step is run again, what follows it is run again too, as with Docker's parent image ids
        state.key = step_key(key, created)

    @staticmethod
    def _set_diff_ids(state: StageState) -> None:
        state.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = [
            d for _, d in state.layers]

    def _settle(self, state: StageState) -> None:
        """Wait for the state's background commit; put its layer in place and in the cache."""
        p = state.pending
        if p is None:
            return
        state.pending = None
        try:
            image = p.future.result()
        except WharfError as e:
            if e.where is None:
                e.where = p.where
            raise
        except OSError as e:
            raise RuntimeFailure(f"RUN: committing the layer failed: {e.strerror or e}", where=p.where) from None
        finally:
            p.lease.release(self.store)
        layer = (image.layers[-1]["digest"], image.config["rootfs"]["diff_ids"][-1])
        state.layers[p.index] = layer
        self._set_diff_ids(state)
        self.cache.put(p.cache_key, Entry(created=p.created, layer=layer))
        self.intermediate.add(image.id)
        if p.index == len(state.layers) - 1:
            state.fs_image = image.id

    def _arg(self, state: StageState, inst: Instruction, meta_env: dict[str, str]) -> None:
        env = state.env()
        for key, default in inst.node.pairs:
            if key in self.build_args:
                state.args[key] = self.build_args[key]
                self.used_args.add(key)
            elif default is not None:
                state.args[key] = self._expand(inst, default, env)
            elif key in meta_env:
                state.args[key] = meta_env[key]
            env = state.env()
        # ARG leaves no history (as BuildKit); its values enter the keys of the RUNs that see them

    # ------------------------------------------------------------------ RUN

    def _run_args(self, state: StageState) -> tuple[list[str], list[str]]:
        """(declared ARGs, undeclared proxy args given with --build-arg) that RUN sees; ENV wins.
        As in Docker, the proxies stay out of the history and the cache key."""
        env_keys = set(meta.env_dict(state.cfg.get("Env") or []))
        declared = [f"{k}={v}" for k, v in sorted(state.args.items()) if k not in env_keys]
        proxies = [f"{k}={self.build_args[k]}" for k in sorted(PROXY_ARGS & set(self.build_args))
                   if k not in state.args and k not in env_keys]
        return declared, proxies

    def _run(self, state: StageState, inst: Instruction) -> None:
        argv, stdin = run_step.command(inst.node, state.shell)
        build_args, proxies = self._run_args(state)
        shown = f"|{len(build_args)} {' '.join(build_args)} " if build_args else ""
        text = f"RUN {shown}{' '.join(argv)}"
        extra = json.dumps({"argv": argv, "args": build_args, "stdin": stdin.decode() if stdin else None})

        def produce() -> tuple[PendingCommit, None]:
            prev = state.pending
            if prev is not None and prev.index != len(state.layers) - 1:
                self._settle(state)  # cached layers came after it: no stacking
                prev = None
            base = prev.base if prev is not None else self._fs_image(state)
            env = (state.cfg.get("Env") or []) + build_args + proxies
            try:
                res = run_step.run(self.store, base, argv, env, state.cfg.get("WorkingDir") or "/",
                                   state.cfg.get("User") or "", self.out, stdin,
                                   extra_lower=prev.upper if prev is not None else None, network=self.network)
            finally:
                if prev is not None:  # the container is gone: the step below may be settled now
                    self._settle(state)
            if res.code != 0:
                raise RuntimeFailure(f"The command '{' '.join(argv)}' returned a non-zero code: {res.code}",
                                     where=inst.where, hint=f"step {self.step}/{self.total} failed; "
                                     "nothing was tagged", exit_code=1)
            parent = state.fs_image if prev is not None else base
            assert parent is not None and res.upper is not None
            future = self.pool.submit(self.store.commit, res.lease.key, parent, message=text, compression="")
            return PendingCommit(future=future, lease=res.lease, upper=res.upper, base=parent, where=inst.where), None

        self._step(state, inst, text, extra, produce)
        self.used_args.update(a.partition("=")[0] for a in build_args)

    def _fs_image(self, state: StageState) -> str:
        """An image id with the state's layers (written on demand; config need not match)."""
        self._settle(state)
        if state.fs_image is None:
            state.fs_image = self.store.add_image(copy.deepcopy(state.config), list(state.layers)).id
            self.intermediate.add(state.fs_image)
        return state.fs_image

    def _drop_intermediate(self) -> None:
        """Remove the untagged step images whose layers a stage image (or the final one) has
        anyway: they only cost a config each. The stage images stay, as Docker leaves them, and
        so do the ones another build in this process (the reconciler builds in parallel) uses."""
        kept = {img.id: img.config["rootfs"]["diff_ids"] for img in self.written}
        with _LIVE_LOCK:
            busy = set().union(*(ids for ids in _LIVE if ids is not self.intermediate))
        for image_id in self.intermediate - set(kept) - busy:
            try:
                img = self.store.resolve(image_id)
                diffs = img.config["rootfs"]["diff_ids"]
                if img.repo_tags or img.repo_digests or not any(d[:len(diffs)] == diffs for d in kept.values()):
                    continue
                self.store.remove(image_id, events=False)  # never announced: no delete event either
            except WharfError:
                continue  # gone already, or in use by a concurrent build

    def _write(self, state: StageState) -> Any:
        self._settle(state)
        config = copy.deepcopy(state.config)
        config.setdefault("rootfs", {})["type"] = "layers"
        config["rootfs"]["diff_ids"] = [d for _, d in state.layers]
        image = self.store.add_image(config, list(state.layers))
        self.written.append(image)
        return image

    # ------------------------------------------------------------------ COPY / ADD / WORKDIR

    def _copy(self, state: StageState, inst: Instruction) -> None:
        node, env = inst.node, state.env()
        x = (lambda s: self._expand(inst, s, env))  # noqa: E731
        heredocs: dict[str, bytes] = {}
        docs = {d.name: d for d in node.heredocs}
        words = []
        for word in node.args:
            name = _heredoc_word(word)
            if name is not None and name in docs:
                d = docs[name]
                content = d.body()
                if d.expand:
                    try:
                        content = expand_heredoc(content, env, self.escape)
                    except LexError as e:
                        raise inst.error(f"{inst.cmd.upper()}: {e}") from None
                key = "<<" + name
                heredocs[key] = content.encode()
                words.append(key)
            else:
                words.append(x(word))
        *sources, dest_raw = words
        if not sources:
            raise inst.error(f"{inst.cmd.upper()} requires at least one source")
        workdir = state.cfg.get("WorkingDir") or "/"
        dest = dest_raw if dest_raw.startswith("/") else posixpath.join(workdir, dest_raw)
        dest_is_dir = dest_raw.endswith("/") or dest_raw in (".", "./") or dest_raw.endswith("/.")
        flags = {k: x(str(v)) for k, v in inst.flags.items() if k != "link"}
        chmod = copy_step.parse_chmod(flags["chmod"], inst.where) if "chmod" in flags else None
        req = copy_step.CopyRequest(where=inst.where, add=inst.cmd == "add", sources=sources,
                                    dest=posixpath.normpath(dest), dest_is_dir=dest_is_dir, heredocs=heredocs,
                                    chown=flags.get("chown"), chmod=chmod, checksum=flags.get("checksum"))
        from_key = None
        from_image = None
        if "from" in flags:
            ref = flags["from"]
            idx = self.plan.stage_index(ref)
            if idx is not None and idx in self.results:
                src_state = self.results[idx]
                from_key = src_state.key
                from_image = lambda: self._fs_image(src_state) if src_state.layers else None  # noqa: E731
            elif idx is not None or ref.lower() in {s.name for s in self.plan.stages if s.name}:
                raise inst.error(f"COPY --from={ref}: stage {ref!r} is not built before this one",
                                 hint="a stage can only copy from stages defined above it")
            else:
                # a local image; pulled only with --pull (a mistyped stage name must not go to a registry)
                try:
                    img = self._image(inst, ref) if self.pull else self.store.resolve(ref)
                except NotFound:
                    raise NotFound(f"COPY --from={ref}: no such stage or image", where=inst.where,
                                   hint="name a stage defined above, or pull the image first "
                                   f"(wharf pull {ref}, or build with --pull)") from None
                from_key = img.id
                from_image = lambda: img.id  # noqa: E731
            req.from_image = True
        text = f"{inst.cmd.upper()} " + " ".join(f"--{k}={v}" for k, v in sorted(flags.items())) + \
            (" " if flags else "") + " ".join(words)
        try:
            digest = copy_step.prepare(req, self.ctx)

            def produce() -> tuple[tuple[str, str], None]:
                with rfs.mounted(self.store, self._fs_image(state) if state.layers else None) as (root, _):
                    if from_image is not None:
                        with rfs.mounted(self.store, from_image()) as (src_root, _):
                            req.from_rootfs = src_root
                            return self._commit_layer(state, copy_step.build_layer(req, self.ctx, root)), None
                    return self._commit_layer(state, copy_step.build_layer(req, self.ctx, root)), None

            self._step(state, inst, text, f"{digest} {from_key}", produce)
        finally:
            copy_step.cleanup(req)

    def _commit_layer(self, state: StageState, lb: LayerBuilder) -> tuple[str, str]:
        """The layer's blob; its snapshot is unpacked from the same stream, so add_image finds it in
        place instead of reading the blob back. The blob is an uncompressed tar: digest == diff_id."""
        from runtime.images import oci

        diff_ids = [d for _, d in state.layers]
        if "" in diff_ids:  # a RUN below is still being committed (the callers settle it first)
            self._settle(state)
            diff_ids = [d for _, d in state.layers]
        snap = self.store.snapshots.writer(f"build step {self.step} layer")
        try:
            digest = lb.write(self.store.content, snap)
            chain = oci.chain_ids(diff_ids + [digest])
            snap.publish(chain[-1], chain[-2] if len(chain) > 1 else None, digest)
        finally:
            snap.abort()
        return digest, digest

    def _workdir(self, state: StageState, inst: Instruction) -> None:
        path = self._expand(inst, inst.node.args[0], state.env())
        if not path:
            raise inst.error("WORKDIR can not be empty")
        current = state.cfg.get("WorkingDir") or "/"
        new = posixpath.normpath(posixpath.join(current, path))
        if new.startswith("//"):
            new = new[1:]

        def produce() -> tuple[tuple[str, str] | None, str | None]:
            with rfs.mounted(self.store, self._fs_image(state) if state.layers else None) as (root, _):
                if rfs.is_dir_in(root, new):
                    return None, state.fs_image
                lb = LayerBuilder()
                lb.ensure_parents(new, lambda p: rfs.exists_in(root, p))
                lb.add_dir(new)
                return self._commit_layer(state, lb), None

        self._step(state, inst, f"WORKDIR {new}", None, produce,
                   lambda: state.cfg.__setitem__("WorkingDir", new))


def _heredoc_word(word: str) -> str | None:
    if not word.startswith("<<"):
        return None
    return expand(word[2:].lstrip("-"), {})


def build(engine_or_parts: Any, context: Path | str | BuildContext, dockerfile: str = "Dockerfile",
          tags: list[str] | None = None, build_args: dict[str, str] | None = None, target: str | None = None,
          labels: dict[str, str] | None = None, no_cache: bool = False, pull: bool = False,
          progress: Callable[[str], None] = print, dockerfile_text: str | None = None,
          network: str = "host") -> Any:
    """Build a Dockerfile; returns the ImageStore's Image. `engine_or_parts` is an ImageStore, an
    engine with an image store (`.store`, `.image_store` or `.images.store`), or None for the default.
    `dockerfile` is a path relative to the context (or absolute); `dockerfile_text` overrides it.
    `network`: what RUN steps see, "host" (default) or "none"."""
    if network == "default":
        network = "host"
    if network not in run_step.NETWORKS:
        raise InvalidArgument(f"--network {network!r} is not supported for builds", hint="use host or none")
    store = _store_of(engine_or_parts)
    ctx = context if isinstance(context, BuildContext) else BuildContext.from_dir(context)
    if dockerfile_text is None:
        path = Path(dockerfile) if os.path.isabs(dockerfile) else ctx.root / dockerfile
        try:
            dockerfile_text = path.read_text()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"cannot read Dockerfile {str(path)!r}: no such file",
                           hint="give -f PATH, or put a Dockerfile in the build context") from None
        except UnicodeDecodeError:
            raise InvalidArgument(f"{path}: the Dockerfile is not UTF-8 text") from None
        specific = path.with_name(path.name + ".dockerignore")
        if specific.is_file():
            ctx.use_ignore_file(specific)
    name = posixpath.basename(dockerfile) or "Dockerfile"
    for ref in tags or []:
        _check_tag(ref)
    build_plan = plan(parse(dockerfile_text, name=name))
    run_step.repair(store)
    builder = Builder(store, ctx, build_plan, tags=list(tags or []), build_args=dict(build_args or {}),
                      target=target, labels=dict(labels or {}), no_cache=no_cache, pull=pull, progress=progress,
                      network=network)
    return builder.build()


def _check_tag(ref: str) -> None:
    try:
        from runtime.images.reference import parse as parse_ref
    except ImportError:
        return
    try:
        parse_ref(ref)
    except WharfError as e:
        raise InvalidArgument(f"invalid tag {ref!r}: {e.message}", hint="name[:tag], e.g. myapp:1.0") from None


def _store_of(obj: Any) -> Any:
    if obj is None:
        from runtime.images.store import ImageStore

        return ImageStore()
    for attr in ("store", "image_store"):
        if hasattr(obj, attr) and hasattr(getattr(obj, attr), "rootfs_mounts"):
            return getattr(obj, attr)
    images = getattr(obj, "images", None)
    if images is not None and hasattr(getattr(images, "store", None), "rootfs_mounts"):
        return images.store
    return obj
