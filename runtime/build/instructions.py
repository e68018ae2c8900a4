"""Parsed nodes -> validated instructions grouped into stages (BuildKit's instructions.Parse).

Rejects what Docker rejects (unknown instructions, bad FROM, SHELL not in JSON form,
ONBUILD ONBUILD/FROM/MAINTAINER, unknown HEALTHCHECK type, unknown flags) and the
BuildKit-only RUN flags Wharf does not implement (`--mount`, `--network`, `--security`),
each with the Dockerfile line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runtime.build.parser import Dockerfile, Node
from runtime.errors import InvalidArgument

KNOWN = frozenset({"add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
                   "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
                   "workdir"})
STRING_FLAGS = {
    "from": {"platform"},
    "add": {"chown", "chmod", "checksum"},
    "copy": {"from", "chown", "chmod"},
    "healthcheck": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
BOOL_FLAGS = {"add": {"link"}, "copy": {"link"}}
BUILDKIT_ONLY = {
    "run": {"mount", "network", "security"},
    "add": {"keep-git-dir", "exclude"},
    "copy": {"parents", "exclude"},
}
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
# Substitution happens for these (Docker's list); RUN/CMD/ENTRYPOINT go to the shell as written.
EXPANDED = frozenset({"add", "copy", "env", "expose", "from", "label", "stopsignal", "user", "volume",
                      "workdir", "arg"})


@dataclass
class Instruction:
    node: Node
    flags: dict[str, str | bool] = field(default_factory=dict)
    where: str = ""

    @property
    def cmd(self) -> str:
        return self.node.cmd

    @property
    def line(self) -> int:
        return self.node.line

    def error(self, message: str, hint: str | None = None) -> InvalidArgument:
        return InvalidArgument(message, where=self.where, hint=hint)


@dataclass
class Stage:
    index: int
    base: str  # the FROM argument as written (substituted later with the global ARGs)
    name: str | None
    platform: str | None
    from_: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class BuildPlan:
    meta_args: list[Instruction]
    stages: list[Stage]
    dockerfile: Dockerfile

    def stage_index(self, ref: str) -> int | None:
        """The stage called `ref` (case-insensitive) or numbered `ref`, else None."""
        ref_l = ref.lower()
        for st in self.stages:
            if st.name == ref_l:
                return st.index
        if ref.isdigit() and int(ref) < len(self.stages):
            return int(ref)
        return None


def check_instruction(node: Node, where: str, in_onbuild: bool = False) -> Instruction:
    """Validate one node (also used for ONBUILD triggers when they fire in a child)."""
    cmd = node.cmd
    if cmd not in KNOWN:
        raise InvalidArgument(f"unknown instruction: {node.original.split()[0].upper()}", where=where,
                              hint="see https://docs.docker.com/reference/dockerfile/ for the instructions")
    inst = Instruction(node=node, where=where)
    allowed_s, allowed_b = STRING_FLAGS.get(cmd, set()), BOOL_FLAGS.get(cmd, set())
    for flag in node.flags:
        name, eq, value = flag[2:].partition("=")
        if name in BUILDKIT_ONLY.get(cmd, ()):
            raise inst.error(f"{cmd.upper()} --{name} is a BuildKit-only flag that wharf build does not support",
                             hint=f"remove --{name}; RUN steps use the host network and no extra mounts")
        if name in allowed_b:
            if eq and value.lower() not in ("true", "false"):
                raise inst.error(f"expecting boolean value for flag {name}, not: {value}")
            inst.flags[name] = not eq or value.lower() == "true"
        elif name in allowed_s:
            if not eq:
                raise inst.error(f"missing a value on flag: --{name}", hint=f"write --{name}=VALUE")
            inst.flags[name] = value
        else:
            raise inst.error(f"unknown flag: --{name} for {cmd.upper()}")
    _check_args(inst, in_onbuild)
    return inst


def _check_args(inst: Instruction, in_onbuild: bool) -> None:
    node, cmd = inst.node, inst.cmd
    up = cmd.upper()
    if cmd in ("run", "cmd", "entrypoint", "shell") and not node.args and not node.heredocs:
        if cmd in ("run", "shell"):
            raise inst.error(f"{up} requires at least one argument")
    if cmd == "shell" and not node.json:
        raise inst.error("SHELL requires the arguments to be in JSON form", hint='SHELL ["/bin/sh", "-c"]')
    if cmd in ("add", "copy"):
        if len(node.args) < 2 and not (node.heredocs and node.args):
            raise inst.error(f"{up} requires at least two arguments, but only {len(node.args)} provided",
                             hint=f"{up} <src>... <dest>")
    if cmd in ("expose", "volume", "workdir", "user", "stopsignal", "maintainer") and not node.args:
        raise inst.error(f"{up} requires at least one argument")
    if cmd in ("workdir", "user", "stopsignal", "maintainer") and len(node.args) != 1:
        raise inst.error(f"{up} requires exactly one argument")
    if cmd == "arg":
        if not node.pairs:
            raise inst.error("ARG requires at least one argument")
        for key, _ in node.pairs:
            if not key:
                raise inst.error("ARG names can not be blank")
    if cmd == "healthcheck":
        if not node.args:
            raise inst.error("HEALTHCHECK requires an argument (CMD ... or NONE)")
        typ = node.args[0].upper()
        if typ == "NONE":
            if node.sub and node.sub.args or inst.flags:
                raise inst.error("HEALTHCHECK NONE takes no arguments")
        elif typ == "CMD":
            if not node.sub or not node.sub.args:
                raise inst.error("Missing command after HEALTHCHECK CMD")
        else:
            raise inst.error(f"Unknown type {node.args[0]!r} in HEALTHCHECK (try CMD)")
    if cmd == "onbuild":
        if in_onbuild or node.sub is None:
            raise inst.error("ONBUILD requires an instruction" if node.sub is None else "ONBUILD ONBUILD isn't allowed")
        sub = node.sub.cmd
        if sub == "onbuild":
            raise inst.error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if sub in ("from", "maintainer"):
            raise inst.error(f"{sub.upper()} isn't allowed as an ONBUILD trigger")
        check_instruction(node.sub, inst.where, in_onbuild=True)


def plan(df: Dockerfile) -> BuildPlan:
    """Group the instructions into stages; ARGs before the first FROM are the global ones."""
    meta: list[Instruction] = []
    stages: list[Stage] = []
    if not df.nodes:
        raise InvalidArgument("the Dockerfile has no instructions", where=df.name, hint="start it with FROM")
    for node in df.nodes:
        where = f"{df.name}:{node.line}"
        inst = check_instruction(node, where)
        if node.cmd == "from":
            stages.append(_stage(inst, len(stages), stages))
        elif not stages:
            if node.cmd != "arg":
                raise inst.error(f"{node.cmd.upper()} before the first FROM (only ARG may come before FROM)",
                                 hint="start the Dockerfile with FROM <image>")
            meta.append(inst)
        else:
            stages[-1].instructions.append(inst)
    return BuildPlan(meta_args=meta, stages=stages, dockerfile=df)


def _stage(inst: Instruction, index: int, before: list[Stage]) -> Stage:
    args = inst.node.args
    if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
        raise inst.error("FROM requires either one or three arguments", hint="FROM <image> [AS <name>]")
    name = args[2].lower() if len(args) == 3 else None
    if name is not None:
        if not _STAGE_NAME.match(name):
            raise inst.error(f"invalid name for build stage: {args[2]!r}, name can't start with a number "
                             "or contain symbols")
        if any(s.name == name for s in before):
            raise inst.error(f"duplicate stage name {name!r}")
    platform = inst.flags.get("platform")
    return Stage(index=index, base=args[0], name=name, platform=platform if isinstance(platform, str) else None,
                 from_=inst)
