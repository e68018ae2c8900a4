"""`build()`: run a Dockerfile's stages against the ImageStore, with a per-step cache.

Each stage is a state (image config + layer list + cache key) that every instruction
turns into the next: metadata instructions change the config only (history gets
`empty_layer`), RUN runs a container and commits its upper dir (run_step.py),
COPY/ADD/WORKDIR write a layer tar straight into the content store (copy_step.py).
Images are only written when a step needs a rootfs and at the end; tags are set only
after every step succeeded. Only the stages the target needs are built.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform as host_platform
import posixpath
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.build import copy_step, meta, run_step
from runtime.build import rootfs as rfs
from runtime.build.cache import BuildCache, Entry, rfc3339, step_key
from runtime.build.context import BuildContext
from runtime.build.instructions import BuildPlan, Instruction, Stage, check_instruction, plan
from runtime.build.layer import LayerBuilder
from runtime.build.lexer import LexError, expand, expand_heredoc, expand_words
from runtime.build.parser import parse
from runtime.errors import InvalidArgument, NotFound, RuntimeFailure, WharfError

DEFAULT_SHELL = ["/bin/sh", "-c"]
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
COMMENT = "wharf build"


def _arch() -> str:
    m = host_platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)


def platform_args() -> dict[str, str]:
    arch = _arch()
    plat = f"linux/{arch}"
    return {"BUILDPLATFORM": plat, "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": "",
            "TARGETPLATFORM": plat, "TARGETOS": "linux", "TARGETARCH": arch, "TARGETVARIANT": ""}


@dataclass
class PendingCommit:
    """A RUN whose container has exited and whose layer is being committed in the background.
    Meanwhile its upper dir is stacked as a lower layer under the next RUN, so the commit of
    one step and the container of the next overlap."""

    future: Future[Any]  # -> the committed Image
    lease: rfs.Lease  # rootfs key of the step (released once committed and no container uses it)
    upper: Path
    base: str  # the image the step ran on: base + upper = the step's result
    where: str
    cache_key: str = ""
    created: str = ""
    index: int = 0  # its slot in StageState.layers


@dataclass
class StageState:
    config: dict[str, Any]  # the full OCI image config
    layers: list[tuple[str, str]]  # (blob digest, diff_id)
    key: str  # cache chain key
    fs_image: str | None  # an image id whose layers are exactly `layers` (None: not written yet)
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in this stage that have a value
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False
    pending: PendingCommit | None = None  # the last RUN, still being committed

    @property
    def cfg(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        """What substitution sees: stage ARGs, overridden by ENV."""
        return {**self.args, **meta.env_dict(self.cfg.get("Env") or [])}


class Builder:
    def __init__(self, store: Any, context: BuildContext, build_plan: BuildPlan, *, tags: list[str],
                 build_args: dict[str, str], target: str | None, labels: dict[str, str], no_cache: bool,
                 pull: bool, progress: Callable[[str], None]) -> None:
        self.store = store
        self.ctx = context
        self.plan = build_plan
        self.tags = tags
        self.build_args = dict(build_args)
        self.target = target
        self.labels = labels
        self.no_cache = no_cache
        self.pull = pull
        self.out = progress
        self.cache = BuildCache()
        self.used_args: set[str] = set()
        self.results: dict[int, StageState] = {}
        self.pulled: set[str] = set()
        self.step = 0
        self.total = 0
        self.intermediate: set[str] = set()  # images written for RUN/COPY rootfs, not asked for
        self.states: list[StageState] = []
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wharf-build-commit")
        self.escape = build_plan.dockerfile.escape

    # ------------------------------------------------------------------ driving

    def build(self) -> Any:
        try:
            return self._build()
        finally:
            for state in self.states:  # a failed build: finish (and cache) what was committing
                with contextlib.suppress(Exception):
                    self._settle(state)
            self.pool.shutdown(wait=True)

    def _build(self) -> Any:
        df = self.plan.dockerfile
        for key in ("syntax", "check"):
            if key in df.directives:
                self.out(f"# {key}={df.directives[key]}: ignored (wharf builds with its own Dockerfile frontend)")
        for warning in df.warnings:
            self.out(f"[Warning] {warning}")
        meta_env = self._meta_args()
        last = self._target_index()
        needed = self._needed(last)
        self.total = sum(1 + len(s.instructions) for s in self.plan.stages if s.index in needed)
        for stage in self.plan.stages[: last + 1]:
            if stage.index in needed:
                self.results[stage.index] = self._build_stage(stage, meta_env)
        state = self.results[last]
        if self.labels:
            state.cfg.setdefault("Labels", {}).update(self.labels)
        unused = sorted(k for k in self.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            self.out(f"[Warning] One or more build-args {unused} were not consumed")
        image = self._write(state)
        self._drop_intermediate(image)
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

    def _needed(self, last: int) -> set[int]:
        needed: set[int] = set()
        todo = [last]
        while todo:
            idx = todo.pop()
            if idx in needed:
                continue
            needed.add(idx)
            stage = self.plan.stages[idx]
            refs = [stage.base] + [str(i.flags["from"]) for i in stage.instructions if "from" in i.flags]
            for ref in refs:
                if "$" in ref:  # decided at build time: keep every earlier stage
                    todo.extend(range(idx))
                    continue
                dep = self.plan.stage_index(ref)
                if dep is not None and dep < idx:
                    todo.append(dep)
        return needed

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
        triggers = state.cfg.pop("OnBuild", None) or []
        if triggers and self.plan.stage_index(base) is None:
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for text in triggers:
                df = parse(text, name=f"ONBUILD trigger of {base}")
                for node in df.nodes:
                    inst = check_instruction(node, stage.from_.where, in_onbuild=True)
                    self._dispatch(state, inst, meta_env)
        self.states.append(state)
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
        try:
            return expand(text, env, self.escape)
        except LexError as e:
            raise inst.error(f"{inst.cmd.upper()}: {e}") from None

    def _dispatch(self, state: StageState, inst: Instruction, meta_env: dict[str, str]) -> None:
        try:
            self._dispatch_one(state, inst, meta_env)
        except WharfError as e:
            if e.where is None:  # name the Dockerfile line on every error of a step
                e.where = inst.where
            raise

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
            text, change = self._metadata(state, inst)
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
        state.key = key

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
        finally:
            p.lease.release(self.store)
        layer = (image.layers[-1]["digest"], image.config["rootfs"]["diff_ids"][-1])
        state.layers[p.index] = layer
        self._set_diff_ids(state)
        self.cache.put(p.cache_key, Entry(created=p.created, layer=layer))
        self.intermediate.add(image.id)
        if p.index == len(state.layers) - 1:
            state.fs_image = image.id

    def _metadata(self, state: StageState, inst: Instruction) -> tuple[str, Callable[[], None] | None]:
        """(instruction text after substitution, config change)."""
        node, cmd, cfg = inst.node, inst.cmd, state.cfg
        env = state.env()
        x = (lambda s: self._expand(inst, s, env))  # noqa: E731
        up = cmd.upper()
        if cmd in ("env", "label"):
            pairs = [(x(k), x(v or "")) for k, v in node.pairs]
            if cmd == "env" and any(not k for k, _ in pairs):
                raise inst.error("ENV names can not be blank")

            def change() -> None:
                if cmd == "env":
                    envl = cfg.get("Env") or []
                    for k, v in pairs:
                        envl = meta.set_env(envl, k, v)
                    cfg["Env"] = envl
                else:
                    cfg.setdefault("Labels", {}).update(dict(pairs))
            return f"{up} " + " ".join(f"{k}={json.dumps(v) if ' ' in v or not v else v}" for k, v in pairs), change
        if cmd in ("cmd", "entrypoint"):
            args = list(node.args) if node.json else list(state.shell) + [" ".join(node.args)] if node.args else []

            def change() -> None:
                cfg["Cmd" if cmd == "cmd" else "Entrypoint"] = args
                if cmd == "cmd":
                    state.cmd_set = True
                elif not state.cmd_set:
                    cfg["Cmd"] = None
            return f"{up} {json.dumps(args)}", change
        if cmd == "expose":
            ports: list[str] = []
            for word in node.args:
                try:
                    for w in expand_words(word, env, self.escape):
                        ports.extend(meta.parse_ports(w))
                except (ValueError, LexError) as e:
                    raise inst.error(f"EXPOSE: {e}") from None
            return f"EXPOSE map[{' '.join(ports)}]", lambda: cfg.setdefault("ExposedPorts", {}).update(
                {p: {} for p in ports})
        if cmd == "volume":
            vols = [x(v) for v in node.args]
            if not vols or any(not v.strip() for v in vols):
                raise inst.error("VOLUME specified can not be an empty string")
            return f"VOLUME {json.dumps(vols)}", lambda: cfg.setdefault("Volumes", {}).update({v: {} for v in vols})
        if cmd == "user":
            user = x(node.args[0])
            return f"USER {user}", lambda: cfg.__setitem__("User", user)
        if cmd == "stopsignal":
            sig = x(node.args[0])
            try:
                meta.check_signal(sig)
            except ValueError as e:
                raise inst.error(f"STOPSIGNAL: {e}") from None
            return f"STOPSIGNAL {sig}", lambda: cfg.__setitem__("StopSignal", sig)
        if cmd == "maintainer":
            who = node.args[0]
            return f"MAINTAINER {who}", lambda: state.config.__setitem__("author", who)
        if cmd == "shell":
            shell = list(node.args)

            def change() -> None:
                state.shell = shell
                cfg["Shell"] = shell
            return f"SHELL {json.dumps(shell)}", change
        if cmd == "onbuild":
            trigger = node.text
            return f"ONBUILD {trigger}", lambda: cfg.setdefault("OnBuild", []).append(trigger)
        if cmd == "healthcheck":
            health = self._health(state, inst)
            return f"HEALTHCHECK {json.dumps(health, sort_keys=True)}", lambda: cfg.__setitem__("Healthcheck", health)
        raise inst.error(f"unknown instruction: {up}")

    def _health(self, state: StageState, inst: Instruction) -> dict[str, Any]:
        node = inst.node
        if node.args[0].upper() == "NONE":
            return {"Test": ["NONE"]}
        assert node.sub is not None
        test = ["CMD", *node.sub.args] if node.sub.json else ["CMD-SHELL", node.sub.args[0]]
        health: dict[str, Any] = {"Test": test}
        names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "start-interval": "StartInterval"}
        for flag, field_name in names.items():
            if flag in inst.flags:
                try:
                    ns = meta.parse_duration(str(inst.flags[flag]))
                except ValueError as e:
                    raise inst.error(f"HEALTHCHECK --{flag}: {e}") from None
                if 0 < ns < 1_000_000:
                    raise inst.error(f"HEALTHCHECK --{flag} cannot be less than 1ms")
                if ns:
                    health[field_name] = ns
        if "retries" in inst.flags:
            try:
                retries = int(str(inst.flags["retries"]))
            except ValueError:
                raise inst.error(f"HEALTHCHECK --retries={inst.flags['retries']}: not a number") from None
            if retries < 0:
                raise inst.error("HEALTHCHECK --retries cannot be negative")
            if retries:
                health["Retries"] = retries
        return health

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

    def _run_args(self, state: StageState) -> list[str]:
        """Build args visible to RUN (declared ARGs, proxies given with --build-arg), ENV wins."""
        env_keys = set(meta.env_dict(state.cfg.get("Env") or []))
        out = [f"{k}={v}" for k, v in sorted(state.args.items()) if k not in env_keys]
        for k in sorted(PROXY_ARGS & set(self.build_args)):
            if k not in state.args and k not in env_keys:
                out.append(f"{k}={self.build_args[k]}")
        return out

    def _run(self, state: StageState, inst: Instruction) -> None:
        node = inst.node
        stdin: bytes | None = None
        if node.json:
            argv = list(node.args)
        elif len(node.heredocs) == 1 and re.fullmatch(r"\d*<<-?\S+", node.text.strip()):
            doc = node.heredocs[0]
            script = _chomp(doc.content) if doc.chomp else doc.content
            if script.startswith("#!"):
                argv = script.splitlines()[0][2:].split()
                stdin = script.encode()
            else:
                argv = [*state.shell, script]
        elif node.heredocs:
            text = node.text + "\n" + "".join(d.content + d.name + "\n" for d in node.heredocs)
            argv = [*state.shell, text]
        else:
            argv = [*state.shell, node.args[0]]
        build_args = self._run_args(state)
        shown = f"|{len(build_args)} {' '.join(build_args)} " if build_args else ""
        text = f"RUN {shown}{' '.join(argv)}"
        extra = json.dumps({"argv": argv, "args": build_args, "stdin": stdin.decode() if stdin else None})

        def produce() -> tuple[PendingCommit, None]:
            prev = state.pending
            if prev is not None and prev.index != len(state.layers) - 1:
                self._settle(state)  # cached layers came after it: no stacking
                prev = None
            base = prev.base if prev is not None else self._fs_image(state)
            env = (state.cfg.get("Env") or []) + list(build_args)
            try:
                res = run_step.run(self.store, base, argv, env, state.cfg.get("WorkingDir") or "/",
                                   state.cfg.get("User") or "", self.out, stdin,
                                   extra_lower=prev.upper if prev is not None else None)
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

    def _drop_intermediate(self, final: Any) -> None:
        """Remove the untagged step images whose layers the final image has anyway (so they only
        cost a config each); other stages' images stay, as Docker leaves them, for the cache."""
        final_diffs = final.config["rootfs"]["diff_ids"]
        for image_id in self.intermediate - {final.id}:
            try:
                img = self.store.resolve(image_id)
                diffs = img.config["rootfs"]["diff_ids"]
                if img.repo_tags or img.repo_digests or final_diffs[:len(diffs)] != diffs:
                    continue
                self.store.remove(image_id)
            except WharfError:
                continue  # gone already, or in use by a concurrent build

    def _write(self, state: StageState) -> Any:
        self._settle(state)
        config = copy.deepcopy(state.config)
        config.setdefault("rootfs", {})["type"] = "layers"
        config["rootfs"]["diff_ids"] = [d for _, d in state.layers]
        return self.store.add_image(config, list(state.layers))

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
                content = _chomp(d.content) if d.chomp else d.content
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
                            return self._commit_layer(copy_step.build_layer(req, self.ctx, root)), None
                    return self._commit_layer(copy_step.build_layer(req, self.ctx, root)), None

            self._step(state, inst, text, f"{digest} {from_key}", produce)
        finally:
            copy_step.cleanup(req)

    def _commit_layer(self, lb: LayerBuilder) -> tuple[str, str]:
        digest = lb.write(self.store.content)
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
                return self._commit_layer(lb), None

        self._step(state, inst, f"WORKDIR {new}", None, produce,
                   lambda: state.cfg.__setitem__("WorkingDir", new))


def _heredoc_word(word: str) -> str | None:
    if not word.startswith("<<"):
        return None
    return expand(word[2:].lstrip("-"), {})


def _chomp(text: str) -> str:
    return "".join(line.lstrip("\t") for line in text.splitlines(keepends=True))


def build(engine_or_parts: Any, context: Path | str | BuildContext, dockerfile: str = "Dockerfile",
          tags: list[str] | None = None, build_args: dict[str, str] | None = None, target: str | None = None,
          labels: dict[str, str] | None = None, no_cache: bool = False, pull: bool = False,
          progress: Callable[[str], None] = print, dockerfile_text: str | None = None) -> Any:
    """Build a Dockerfile; returns the ImageStore's Image. `engine_or_parts` is an ImageStore, an
    engine with an image store (`.store`, `.image_store` or `.images.store`), or None for the default.
    `dockerfile` is a path relative to the context (or absolute); `dockerfile_text` overrides it."""
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
                      target=target, labels=dict(labels or {}), no_cache=no_cache, pull=pull, progress=progress)
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
