"""RUN: execute a command in a throw-away container on the current image and commit its upper dir.

The container is an OCI bundle (config.json from runtime.containers.bundle, the same
defaults `wharf run` uses) run by the OCI runtime in runc's CLI shape (`runc run`),
on an overlay from ImageStore.rootfs_mounts. Network: the host's (like
`docker build --network host`) or none (a new namespace with only lo); no /etc/hosts or
resolv.conf is injected. Nothing
of a failed step is kept: the runtime state, the mounts and the upper dir go.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import paths
from runtime.build import rootfs as rfs
from runtime.build.parser import Node
from runtime.errors import RuntimeFailure

# Mount points the runtime creates when the image lacks them; not part of the layer (Docker
# keeps them in its "-init" layer).
_MOUNTPOINTS = ("proc", "sys", "dev")


def command(node: Node, shell: list[str]) -> tuple[list[str], bytes | None]:
    """RUN's argv (and stdin): exec form as is; shell form through SHELL; a lone heredoc is the
    script (fed on stdin to its #! interpreter); other heredocs go to the shell as written."""
    if node.json:
        return list(node.args), None
    if len(node.heredocs) == 1 and re.fullmatch(r"\d*<<-?\S+", node.text.strip()):
        script = node.heredocs[0].body()
        if script.startswith("#!"):
            return script.splitlines()[0][2:].split(), script.encode()
        return [*shell, script], None
    if node.heredocs:
        return [*shell, node.text + "\n" + "".join(d.content + d.name + "\n" for d in node.heredocs)], None
    return [*shell, node.args[0]], None


def runtime_argv() -> list[str]:
    """The OCI runtime the containers use (WHARF_RUNTIME, default runc); WHARF_BUILD_RUNTIME overrides."""
    from runtime.containers.launch import default_runtime
    from runtime.containers.launch import runtime_argv as argv_of

    return argv_of(os.environ.get("WHARF_BUILD_RUNTIME") or default_runtime())


NETWORKS = ("host", "none")  # RUN's network: the host's (default) or a namespace with only lo


def _bundle_config(args: list[str], env: list[str], cwd: str, uid: int, gid: int, groups: list[int],
                   key: str, network: str) -> dict[str, Any]:
    from runtime.containers.bundle import BundleInputs, oci_config
    from runtime.engine import ContainerSpec

    spec = ContainerSpec(image="", network_mode=network)
    inp = BundleInputs(args=args, env=env, cwd=cwd, uid=uid, gid=gid, groups=groups, hostname="buildkitsandbox",
                       cgroups_path=f"/wharf/{key}", mounts=[], netns="host" if network == "host" else None)
    return oci_config(spec, inp)


@dataclass
class RunResult:
    code: int
    lease: rfs.Lease  # the rootfs key: commit it, then release it (already released when code != 0)
    upper: Path | None  # its upper dir (a lower for the next step until released)


def run(store: Any, image_id: str, args: list[str], env: list[str], workdir: str, user: str,
        output: Callable[[str], None], stdin: bytes | None = None, extra_lower: Path | None = None,
        network: str = "host") -> RunResult:
    """Run `args` on `image_id` (with `extra_lower`, a finished step's upper dir, on top)."""
    from runtime.containers.users import resolve_user

    lease = rfs.Lease(rfs.new_key("build"))
    key = lease.key
    output(f" ---> Running in {key}")
    ok = False
    try:
        with rfs.mounted(store, image_id, lease, extra_lower) as (rootfs, mounts):
            missing = [p for p in _MOUNTPOINTS if not os.path.lexists(rootfs / p)]
            uid, gid, groups = resolve_user(str(rootfs), user)
            home = _home(rootfs, uid)
            full_env = _with_defaults(env, home)
            cwd = workdir or "/"
            with contextlib.suppress(OSError):  # the runtime needs the cwd to exist
                target = rfs.resolve_in(rootfs, cwd)
                if not target.exists():
                    target.mkdir(parents=True)
            bundle = rootfs.parent
            (bundle / "config.json").write_text(json.dumps(
                _bundle_config(args, full_env, cwd, uid, gid, groups, key, network)))
            code = _exec(key, bundle, state_root(), output, stdin)
            upper = rfs.upperdir(mounts)
        if code == 0 and upper is not None:
            for name in missing:
                with contextlib.suppress(OSError):
                    (upper / name).rmdir()
        ok = code == 0
        return RunResult(code, lease, upper)
    finally:
        if not ok:
            with contextlib.suppress(Exception):
                lease.release(store)


def state_root() -> Path:
    return paths.run_dir() / "build" / "runtime"


def delete_container(key: str) -> None:
    subprocess.run([*runtime_argv(), "--root", str(state_root()), "delete", "--force", key],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def repair(store: Any) -> list[str]:
    """Clean up after builds that were killed mid-step (called before each build)."""
    return rfs.repair(store, state_root(), delete_container)


def _exec(key: str, bundle: Path, state_root: Path, output: Callable[[str], None], stdin: bytes | None) -> int:
    argv = [*runtime_argv(), "--root", str(state_root), "run", "--bundle", str(bundle), key]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        raise RuntimeFailure(f"cannot start the OCI runtime {argv[0]}: {e}") from None
    try:
        if stdin is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin)
            proc.stdin.close()
        assert proc.stdout is not None
        for raw in proc.stdout:
            output(raw.decode(errors="replace").rstrip("\n"))
        return proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: the container must not outlive the build
            proc.kill()
            proc.wait()
            delete_container(key)


def _home(rootfs: Path, uid: int) -> str:
    try:
        for line in (rootfs / "etc" / "passwd").read_text(errors="replace").splitlines():
            f = line.split(":")
            if len(f) > 5 and f[2] == str(uid):
                return f[5] or "/"
    except OSError:
        pass
    return "/root" if uid == 0 else "/"


def _with_defaults(env: list[str], home: str) -> list[str]:
    keys = {e.partition("=")[0] for e in env}
    out = list(env)
    if "PATH" not in keys:
        out.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if "HOSTNAME" not in keys:
        out.append("HOSTNAME=buildkitsandbox")
    if "HOME" not in keys:
        out.append(f"HOME={home}")
    return out
