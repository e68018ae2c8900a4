"""Instructions that only change the image config (ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME,
USER, STOPSIGNAL, MAINTAINER, SHELL, ONBUILD, HEALTHCHECK): each gives the text recorded in the
history and cache key (after substitution) and the change to apply, also on a cache hit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runtime.build import meta
from runtime.build.instructions import Instruction
from runtime.build.lexer import LexError, expand, expand_words
from runtime.build.state import StageState


def expand_in(inst: Instruction, text: str, env: dict[str, str], escape: str) -> str:
    """Substitute variables in an instruction argument; errors name its Dockerfile line."""
    try:
        return expand(text, env, escape)
    except LexError as e:
        raise inst.error(f"{inst.cmd.upper()}: {e}") from None


def metadata(state: StageState, inst: Instruction, escape: str) -> tuple[str, Callable[[], None]]:
    """(the instruction after substitution, the config change it makes) for the instructions
    that only change the image config."""
    node, cmd, cfg = inst.node, inst.cmd, state.cfg
    env = state.env()
    x = (lambda s: expand_in(inst, s, env, escape))  # noqa: E731
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
                for w in expand_words(word, env, escape):
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
        health = healthcheck(inst)
        return f"HEALTHCHECK {json.dumps(health, sort_keys=True)}", lambda: cfg.__setitem__("Healthcheck", health)
    raise inst.error(f"unknown instruction: {up}")

def healthcheck(inst: Instruction) -> dict[str, Any]:
    """HEALTHCHECK as the image config stores it (durations in ns; 0 = the default)."""
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
