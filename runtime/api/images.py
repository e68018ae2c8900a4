"""Image routes: /images/..., POST /build (the legacy tar-context builder)."""

from __future__ import annotations

import tempfile
from typing import Any

from runtime.api import progress
from runtime.api.http import Reply, Request, Stream
from runtime.api.router import router
from runtime.api.tarstream import produce, spool_tar
from runtime.errors import InvalidArgument

NAME = r"/images/(?P<name>.+?)"


def _store(engine):
    return engine.images.store


@router.route("GET", r"/images/json")
def list_images(engine, req: Request) -> list[dict[str, Any]]:
    from runtime.images.filters import matches
    from runtime.images.views import summary

    store = _store(engine)
    filters = req.filters()
    if req.q("filter"):
        filters.setdefault("reference", []).append(req.q("filter"))
    images = store.list()
    out = [summary(store, i) for i in images if not filters or matches(i, filters, store_images=images)]
    out.sort(key=lambda d: d["Created"], reverse=True)
    return out


@router.route("GET", NAME + r"/json")
def inspect(engine, req: Request) -> dict[str, Any]:
    from runtime.images.views import inspect as inspect_view

    store = _store(engine)
    d = inspect_view(store, store.resolve(req.params["name"]))
    zero = "0001-01-01T00:00:00Z"  # Go clients parse these as times: never send ""
    d["Created"] = d.get("Created") or zero
    meta = d.setdefault("Metadata", {})
    meta["LastTagTime"] = meta.get("LastTagTime") or zero
    return d


@router.route("GET", NAME + r"/history")
def history(engine, req: Request) -> list[dict[str, Any]]:
    from runtime.images.views import history as history_view
    from runtime.images.views import parse_time

    store = _store(engine)
    rows = history_view(store, store.resolve(req.params["name"]))
    for r in rows:
        t = parse_time(r["Created"] or "")
        r["Created"] = int(t.timestamp()) if t else 0
    return rows


@router.route("POST", NAME + r"/tag")
def tag(engine, req: Request) -> Reply:
    repo = req.q("repo")
    if not repo:
        raise InvalidArgument("tag needs ?repo=")
    new = f"{repo}:{req.q('tag')}" if req.q("tag") else repo
    engine.images.tag(req.params["name"], new)
    return Reply(201, b"", "text/plain")


@router.route("DELETE", r"/images/(?P<name>.+)")
def remove(engine, req: Request) -> list[dict[str, str]]:
    msgs = engine.images.remove(req.params["name"], force=req.qbool("force"))
    return [_msg(m) for m in msgs]


def _msg(m: str) -> dict[str, str]:
    kind, _, what = m.partition(": ")
    return {kind if kind in ("Untagged", "Deleted") else "Deleted": what or m}


@router.route("POST", r"/images/prune")
def prune(engine, req: Request) -> dict[str, Any]:
    filters = req.filters()
    dangling = filters.pop("dangling", ["true"])
    msgs, reclaimed = _store(engine).prune(all=dangling[-1].lower() in ("false", "0"), filters=filters)
    return {"ImagesDeleted": [_msg(m) for m in msgs] or None, "SpaceReclaimed": reclaimed}


@router.route("GET", r"/images/search")
def search(engine, req: Request) -> list[dict[str, Any]]:
    from runtime.registry.client import search as registry_search

    term = req.q("term")
    if not term:
        raise InvalidArgument("search needs ?term=")
    names = registry_search(term, req.qint("limit", 25) or 25)
    return [{"name": n, "description": "", "star_count": 0, "is_official": False, "is_automated": False}
            for n in names]


# ---------------------------------------------------------------- pull / import / push


@router.route("POST", r"/images/create")
def create(engine, req: Request) -> Stream:
    src = req.q("fromSrc")
    if src is not None:
        return _import(engine, req, src)
    image = req.q("fromImage")
    if not image:
        raise InvalidArgument("images/create needs fromImage= (pull) or fromSrc= (import)")
    ref = image
    t = req.q("tag")
    if t:
        ref = f"{image}@{t}" if t.startswith("sha256:") else f"{image}:{t}"
    platform = req.q("platform") or None

    creds = registry_auth(req)

    def work(report):
        if creds is None:
            return engine.images.pull(ref, platform=platform, progress=report)
        from runtime.registry.client import pull

        return pull(_store(engine), ref, platform=platform, progress=report, auth=creds)

    return Stream(progress.run(work))  # the registry client reports Digest/Status itself


def registry_auth(req: Request) -> tuple[str, str] | None:
    """The client's X-Registry-Auth header (base64url JSON {username, password, auth, serveraddress,
    identitytoken}) -> (user, password) for the registry client; None when absent or anonymous."""
    import base64
    import binascii
    import json

    raw = (req.headers.get("X-Registry-Auth") or "").strip()
    if not raw:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw.replace("+", "-").replace("/", "_") + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidArgument("X-Registry-Auth is not base64-encoded JSON",
                              hint='send base64url of {"username": ..., "password": ...}') from None
    if not isinstance(doc, dict):
        raise InvalidArgument("X-Registry-Auth must encode a JSON object")
    user, password = doc.get("username") or "", doc.get("password") or ""
    if not user and isinstance(doc.get("auth"), str) and doc["auth"]:
        try:
            user, _, password = base64.b64decode(doc["auth"]).decode().partition(":")
        except (binascii.Error, ValueError):
            raise InvalidArgument("X-Registry-Auth: auth is not base64 of user:password") from None
    if not isinstance(user, str) or not isinstance(password, str):
        raise InvalidArgument("X-Registry-Auth: username and password must be strings")
    if doc.get("identitytoken") and not password:
        raise InvalidArgument("X-Registry-Auth: identity tokens (OAuth refresh tokens) are not supported",
                              hint="log in with a user name and password")
    return (user, password) if user else None


def _import(engine, req: Request, src: str) -> Stream:
    from runtime.images.archive import import_tar

    if src != "-":
        raise InvalidArgument("import from a URL is not supported", hint="send the tar as the body with fromSrc=-")
    repo = req.q("repo")
    ref = (f"{repo}:{req.q('tag')}" if req.q("tag") else repo) if repo else None
    changes = req.qlist("changes")
    message = req.q("message") or ""
    tmp = tempfile.TemporaryFile(prefix="wharf-import-")
    while data := req.body.read(1 << 20):
        tmp.write(data)
    tmp.seek(0)

    def work(report):
        with tmp:
            return import_tar(_store(engine), tmp, ref, changes, message, platform=req.q("platform"))

    return Stream(progress.run(work, lambda img: [{"status": img.id}]))


@router.route("POST", NAME + r"/push")
def push(engine, req: Request) -> Stream:
    ref = req.params["name"]
    if req.q("tag"):
        ref = f"{ref}:{req.q('tag')}"
    _store(engine).resolve(ref)  # 404 before the stream starts
    creds = registry_auth(req)

    def work(report):
        if creds is None:
            engine.images.push(ref, progress=report)
            return
        from runtime.registry.client import push as registry_push

        registry_push(_store(engine), ref, progress=report, auth=creds)

    return Stream(progress.run(work))


# ---------------------------------------------------------------- save / load


@router.route("GET", r"/images/get")
def save_many(engine, req: Request) -> Stream:
    return _save(engine, req.qlist("names"))


@router.route("GET", NAME + r"/get")
def save_one(engine, req: Request) -> Stream:
    return _save(engine, [req.params["name"]])


def _save(engine, names: list[str]) -> Stream:
    from runtime.images.archive import save

    if not names:
        raise InvalidArgument("images/get needs ?names=")
    store = _store(engine)
    for n in names:
        store.resolve(n)
    return Stream(produce(lambda out: save(store, names, out)), "application/x-tar")


@router.route("POST", r"/images/load")
def load(engine, req: Request) -> Stream:
    from runtime.images.archive import load as load_archive

    tmp = tempfile.TemporaryFile(prefix="wharf-load-")
    while data := req.body.read(1 << 20):
        tmp.write(data)
    tmp.seek(0)

    def work(report):
        with tmp:
            for line in load_archive(_store(engine), tmp):
                report(line)

    return Stream(progress.run(work))


# ---------------------------------------------------------------- build


@router.route("POST", r"/build")
def build(engine, req: Request) -> Stream:
    if req.q("remote"):
        raise InvalidArgument("building from a remote URL is not supported", hint="send the context as a tar body")
    tags = req.qlist("t")
    dockerfile = req.q("dockerfile") or "Dockerfile"
    build_args = _str_map(req.qjson("buildargs", {}), "buildargs")
    labels = _str_map(req.qjson("labels", {}), "labels")
    target = req.q("target") or None
    no_cache = req.qbool("nocache")
    pull = req.qbool("pull")
    quiet = req.qbool("q")
    from runtime.build.context import BuildContext

    with spool_tar(req.body) as tmp:  # the builder's own safe unpacking: no member escapes the context
        ctx = BuildContext.from_tar(tmp)

    def work(report):
        from runtime.build.builder import build as run_build

        try:
            return run_build(_store(engine), ctx, dockerfile=dockerfile, tags=tags, build_args=build_args,
                             target=target, labels=labels, no_cache=no_cache, pull=pull,
                             progress=(lambda _m: None) if quiet else report)
        finally:
            ctx.close()

    def finish(img) -> list[dict[str, Any]]:
        # the builder's progress already ended with "Successfully built/tagged"
        out: list[dict[str, Any]] = [{"aux": {"ID": img.id}}]
        return out + [{"stream": img.id + "\n"}] if quiet else out

    return Stream(progress.run(work, finish))


@router.route("POST", r"/build/prune")
def build_prune(engine, req: Request) -> dict[str, Any]:
    """The build cache index is emptied (its layers stay with their images): the entry keys gone."""
    from runtime.build.cache import BuildCache

    cache = BuildCache()
    keys = sorted(p.stem for p in cache.root.glob("*.json"))
    cache.prune()
    return {"CachesDeleted": keys or None, "SpaceReclaimed": 0}


def _str_map(v: Any, what: str) -> dict[str, str]:
    if not isinstance(v, dict):
        raise InvalidArgument(f"{what} must be a JSON object of strings")
    return {str(k): "" if x is None else str(x) for k, x in v.items()}
