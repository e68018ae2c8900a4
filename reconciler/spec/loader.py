"""Load a project: files -> interpolate -> include -> merge -> extends -> profiles -> validate.

`load_project(files, ...)` returns a LoadedProject: the validated `Project` plus what the
watcher and the planner need (the files read, warnings, the content of env/config files).
Every error is an InvalidArgument naming `file:line:column: field.path`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument

from .envfile import parse_env_text, read_env_file
from .files import find_files
from .interpolate import interpolate
from .merge import mapping_values, merge, merge_files, normalize_service
from .yamlmarks import MDict, MList, load_yaml

PROFILES_VAR = "WHARF_PROFILES"
PROJECT_VAR = "WHARF_PROJECT_NAME"

# Keys of the compose specification (compose-spec.json) that Wharf does not implement:
# they are reported as "not supported by Wharf" rather than as unknown keys.
COMPOSE_SERVICE_KEYS = frozenset("""annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent
command configs container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime
cpu_shares cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules devices dns dns_opt
dns_search domainname entrypoint env_file environment expose extends external_links extra_hosts gpus group_add
healthcheck hostname image init ipc isolation label_file labels links logging mac_address mem_limit
mem_reservation mem_swappiness memswap_limit models network_mode networks oom_kill_disable oom_score_adj pid
pids_limit platform ports post_start pre_stop privileged profiles provider pull_policy pull_refresh_after
read_only restart runtime scale secrets security_opt shm_size stdin_open stop_grace_period stop_signal
storage_opt sysctls tmpfs tty ulimits use_api_socket user userns_mode uts volumes volumes_from
working_dir""".split())
COMPOSE_TOP_KEYS = frozenset({"configs", "include", "models", "name", "networks", "secrets", "services",
                              "version", "volumes"})
COMPOSE_OTHER_KEYS = frozenset({"enable_ipv4", "enable_ipv6", "dockerfile_inline", "cache_from", "cache_to",
                                "network", "shm_size", "ssh", "secrets", "tags", "platforms", "privileged",
                                "additional_contexts", "extra_hosts", "isolation", "no_cache", "pull", "ulimits",
                                "endpoint_mode", "placement", "rollback_config", "devices", "generic_resources",
                                "interface_name", "ipv6_address", "link_local_ips", "mac_address", "driver_opts",
                                "gw_priority", "template_driver", "cpus", "memory", "pids"})


@dataclass
class LoadedProject:
    project: Any  # models.Project
    files: list[Path]
    project_dir: Path
    warnings: list[str] = field(default_factory=list)
    watched: set[Path] = field(default_factory=set)  # every file whose change changes the project
    file_digests: dict[str, str] = field(default_factory=dict)  # config/secret name -> sha256 of content
    raw: Any = None


def normalize_name(name: str) -> str:
    out = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return out.lstrip("_-")


# ---------------------------------------------------------------- paths


def _abs(value: str, base: Path) -> str:
    if value.startswith("~"):
        return os.path.expanduser(value)
    if "://" in value or value.startswith("git@"):
        return value
    return os.path.normpath(base / value)


def _resolve_paths(doc: Any, base: Path) -> None:
    """Make every relative path of one file absolute against `base`."""
    if not isinstance(doc, dict):
        return
    for svc in mapping_values(doc, "services"):
        if not isinstance(svc, dict):
            continue
        b = svc.get("build")
        if isinstance(b, str):
            svc["build"] = _abs(b, base)
        elif isinstance(b, dict) and isinstance(b.get("context", "."), str):
            b["context"] = _abs(b.get("context", "."), base)
        ef = svc.get("env_file")
        if isinstance(ef, str):
            svc["env_file"] = _abs(ef, base)
        elif isinstance(ef, list):
            for i, item in enumerate(ef):
                if isinstance(item, str):
                    ef[i] = _abs(item, base)
                elif isinstance(item, dict) and isinstance(item.get("path"), str):
                    item["path"] = _abs(item["path"], base)
        vols = svc.get("volumes")
        if isinstance(vols, list):
            for i, v in enumerate(vols):
                if isinstance(v, str):
                    src, sep, rest = v.partition(":")
                    if sep and src.startswith((".", "~")):
                        vols[i] = _abs(src, base) + ":" + rest
                elif isinstance(v, dict) and v.get("type") == "bind" and isinstance(v.get("source"), str):
                    v["source"] = _abs(v["source"], base)
        ext = svc.get("extends")
        if isinstance(ext, dict) and isinstance(ext.get("file"), str):
            ext["file"] = _abs(ext["file"], base)
    xw = doc.get("x-wharf")
    for img in (xw.get("images") or []) if isinstance(xw, dict) else ():
        if isinstance(img, dict) and isinstance(img.get("build"), str):
            img["build"] = _abs(img["build"], base)
        elif isinstance(img, dict) and isinstance(img.get("build"), dict):
            img["build"]["context"] = _abs(str(img["build"].get("context", ".")), base)
    for kind in ("configs", "secrets"):
        for obj in mapping_values(doc, kind):
            if isinstance(obj, dict) and isinstance(obj.get("file"), str):
                obj["file"] = _abs(obj["file"], base)


# ---------------------------------------------------------------- the loader


class _Loader:
    def __init__(self, env: Mapping[str, str], warn: Callable[[str], None]) -> None:
        self.env = env
        self.warn = warn
        self.read: set[Path] = set()
        self._cache: dict[Path, Any] = {}

    def read_file(self, path: Path, base: Path, env: Mapping[str, str] | None = None) -> Any:
        key = path.resolve() if path.exists() else path
        if key in self._cache:
            return self._cache[key]
        self.read.add(path)
        doc = load_yaml(path, _display(path))
        if doc is None:
            doc = MDict()
        if not isinstance(doc, dict):
            raise InvalidArgument("a compose file must be a mapping (services:, networks:, ...)",
                                  where=f"{_display(path)}:1")
        interpolate(doc, self.env if env is None else env, self.warn)
        _resolve_paths(doc, base)
        for svc in mapping_values(doc, "services"):
            normalize_service(svc)
        self._cache[key] = doc
        return doc

    def include(self, doc: MDict, stack: tuple[Path, ...]) -> MDict:
        items = doc.pop("include", None)
        if not items:
            return doc
        if not isinstance(items, list):
            raise InvalidArgument("include must be a list", where=str(doc.marks.get("include")))
        for idx, item in enumerate(items):
            where = f"{items.marks[idx]}: include[{idx}]" if isinstance(items, MList) else f"include[{idx}]"
            spec = {"path": item} if isinstance(item, str) else item
            if not isinstance(spec, dict) or "path" not in spec:
                raise InvalidArgument("an include entry needs a path", where=where)
            paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
            first_dir = stack[-1].parent
            files = [Path(_abs(str(p), first_dir)) for p in paths]
            for f in files:
                if not f.is_file():
                    raise InvalidArgument(f"included file {f} not found", where=where)
                if f in stack:
                    raise InvalidArgument(f"include cycle through {f}", where=where)
            pdir = Path(_abs(str(spec.get("project_directory", files[0].parent)), first_dir))
            env = dict(self.env)
            dotenv = Path(_abs(str(spec["env_file"]), first_dir)) if spec.get("env_file") else pdir / ".env"
            if dotenv.is_file():
                self.read.add(dotenv)
                env = {**{k: v for k, v in read_env_file(dotenv, os.environ).items() if v is not None},
                       **self.env}
            sub_loader = _Loader(env, self.warn)
            docs = [sub_loader.include(sub_loader.read_file(f, pdir), (*stack, f)) for f in files]
            self.read |= sub_loader.read
            sub = merge_files(docs)
            for kind in ("services", "networks", "volumes", "configs", "secrets"):
                for name, value in (sub.get(kind) or {}).items():
                    mine = doc.setdefault(kind, MDict())
                    if mine is None:
                        mine = doc[kind] = MDict()
                    if name in mine:
                        raise InvalidArgument(f"{kind}.{name} from {files[0]} conflicts with a definition of "
                                              f"the same name", where=where)
                    mine[name] = value
                    if isinstance(mine, MDict):
                        mine.marks[name] = sub[kind].marks.get(name) if isinstance(sub[kind], MDict) else None
        return doc

    def extends(self, services: MDict, name: str, file: Path, stack: tuple[tuple[str, str], ...]) -> Any:
        svc = services[name]
        if not isinstance(svc, dict) or "extends" not in svc:
            return svc
        ext = svc["extends"]
        where = f"{svc.marks.get('extends')}: services.{name}.extends" if isinstance(svc, MDict) else None
        if isinstance(ext, str):
            ext = {"service": ext}
        if not isinstance(ext, dict) or not isinstance(ext.get("service"), str):
            raise InvalidArgument("extends needs 'service' (and optionally 'file')", where=where)
        target = ext["service"]
        other = Path(ext["file"]) if ext.get("file") else file
        key = (str(other), target)
        if key in stack:
            chain = " -> ".join(s for _, s in (*stack, key))
            raise InvalidArgument(f"extends cycle: {chain}", where=where)
        if other != file:
            if not other.is_file():
                raise InvalidArgument(f"extends file {other} not found", where=where)
            pool = self.read_file(other, other.parent).get("services") or MDict()
        else:
            pool = services
        if target not in pool:
            raise InvalidArgument(f"extends: no service {target!r} in {_display(other)}", where=where)
        base = self.extends(pool, target, other, (*stack, key))
        own = MDict(mark=getattr(svc, "mark", None))
        for k, v in svc.items():
            if k != "extends":
                own[k] = v
                own.marks[k] = svc.marks.get(k) if isinstance(svc, MDict) else None
        if isinstance(base, dict) and base.get("healthcheck", {}) and isinstance(own.get("healthcheck"), dict):
            if own["healthcheck"].get("disable") and not base["healthcheck"].get("disable"):
                raise InvalidArgument("healthcheck.disable: true is not allowed when the extended service "
                                      "has a health check", where=where)
        merged = merge(base, own, ("services", name))
        services[name] = merged
        return merged


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def load_project(files: list[str] | None = None, *, project_name: str | None = None,
                 profiles: list[str] | None = None, ignore_unsupported: bool = False,
                 environ: Mapping[str, str] | None = None, env_file: str | None = None,
                 warn: Callable[[str], None] | None = None, cwd: Path | None = None) -> LoadedProject:
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    paths = find_files(files, cwd)
    for p in paths:
        if not p.is_file():
            raise InvalidArgument(f"compose file {p} not found", hint="check the path given with -f")
    project_dir = paths[0].parent
    base_env = dict(os.environ if environ is None else environ)
    dotenv = Path(env_file).absolute() if env_file else project_dir / ".env"
    env = dict(base_env)
    watched: set[Path] = set(paths) | {dotenv}
    if dotenv.is_file():
        env = {**{k: v for k, v in read_env_file(dotenv, base_env).items() if v is not None}, **base_env}
    elif env_file:
        raise InvalidArgument(f"env file {dotenv} not found", hint="check --env-file")

    loader = _Loader(env, _warn)
    docs = [loader.include(loader.read_file(p, project_dir), (p,)) for p in paths]
    raw = merge_files(docs)
    watched |= loader.read

    services = raw.get("services")
    if services is None:
        services = raw["services"] = MDict()
    if not isinstance(services, dict):
        raise InvalidArgument("services must be a mapping", where=f"{raw.marks.get('services')}: services")
    for name in list(services):
        loader.extends(services, name, paths[0], ())
    watched |= loader.read

    name = project_name or raw.get("name") or env.get(PROJECT_VAR) or project_dir.name
    norm = normalize_name(str(name))
    if not norm:
        raise InvalidArgument(f"invalid project name {name!r}", hint="use lowercase letters, digits, '-' and '_'")
    if project_name is None and raw.get("name") and norm != raw["name"]:
        raise InvalidArgument(f"invalid project name {raw['name']!r} (lowercase letters, digits, '-', '_')",
                              where=f"{raw.marks.get('name')}: name")
    raw["name"] = norm

    active = set(profiles or [])
    active |= {p.strip() for p in env.get(PROFILES_VAR, "").split(",") if p.strip()}
    for sname in list(services):
        svc = services[sname]
        prof = svc.get("profiles") if isinstance(svc, dict) else None
        if prof and "*" not in active and not active.intersection(map(str, prof)):
            del services[sname]

    from .validate import check_references, validate_model

    project = validate_model(raw, ignore_unsupported, _warn)
    digests = check_references(project, raw, env, watched)
    return LoadedProject(project=project, files=paths, project_dir=project_dir, warnings=warnings,
                         watched=watched, file_digests=digests, raw=raw)


def print_warning(msg: str) -> None:
    print(f"wharf: warning: {msg}", file=sys.stderr)


__all__ = ["LoadedProject", "load_project", "find_files", "parse_env_text", "print_warning"]
