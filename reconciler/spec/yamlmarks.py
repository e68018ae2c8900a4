"""YAML -> plain data that remembers where every value came from (file:line:column).

`load_yaml(path)` returns MDict/MList/str/int/... trees. MDict and MList are dict/list
subclasses carrying `marks` (key or index -> Mark) so that errors found later (pydantic
validation, interpolation, merge) can name `compose.yaml:12:7`. The compose `!reset` and
`!override` tags become Reset/Override wrappers that the merge step understands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument


@dataclass(frozen=True)
class Mark:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class MDict(dict):
    """A mapping with the Mark of each key's value (and of itself)."""

    __slots__ = ("marks", "mark")

    def __init__(self, *args: Any, mark: Mark | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.marks: dict[Any, Mark] = {}
        self.mark = mark


class MList(list):
    """A sequence with the Mark of each item (and of itself)."""

    __slots__ = ("marks", "mark")

    def __init__(self, *args: Any, mark: Mark | None = None) -> None:
        super().__init__(*args)
        self.marks: list[Mark | None] = [None] * len(self)
        self.mark = mark

    def add(self, value: Any, mark: Mark | None) -> None:
        self.append(value)
        self.marks.append(mark)


@dataclass
class Reset:
    """`!reset`: the merged attribute is removed."""

    value: Any


@dataclass
class Override:
    """`!override`: the merged attribute is replaced, not merged."""

    value: Any


def _mark(node: Any, file: str) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(node: Any, file: str, loader: Any, anchors: dict[int, Any]) -> Any:
    import yaml

    if id(node) in anchors:  # aliases share the node object: reuse the converted value
        return anchors[id(node)]
    tag = node.tag
    if isinstance(node, yaml.MappingNode):
        out = MDict(mark=_mark(node, file))
        anchors[id(node)] = out
        merges: list[Any] = []
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":  # << : *anchor
                merges.append(vnode)
                continue
            key = _convert(knode, file, loader, anchors)
            if isinstance(key, (dict, list)):
                raise InvalidArgument("a mapping key must be a scalar", where=str(_mark(knode, file)))
            if key in out:
                raise InvalidArgument(f"duplicate key {key!r}", where=str(_mark(knode, file)))
            out[key] = _convert(vnode, file, loader, anchors)
            out.marks[key] = _mark(vnode, file)
        for m in merges:  # explicit keys win over merged ones
            sources = m.value if isinstance(m, yaml.SequenceNode) else [m]
            for s in sources:
                src = _convert(s, file, loader, anchors)
                if not isinstance(src, dict):
                    raise InvalidArgument("'<<' needs a mapping", where=str(_mark(s, file)))
                for k, v in src.items():
                    if k not in out:
                        out[k] = v
                        out.marks[k] = getattr(src, "marks", {}).get(k) or _mark(s, file)
        value: Any = out
    elif isinstance(node, yaml.SequenceNode):
        out_l = MList(mark=_mark(node, file))
        anchors[id(node)] = out_l
        for item in node.value:
            out_l.add(_convert(item, file, loader, anchors), _mark(item, file))
        value = out_l
    else:
        if tag in ("!reset", "!override"):
            value = loader.construct_scalar(node)
            value = None if value in ("", "null", "~") else value
        else:
            value = loader.construct_object(node, deep=True)
    if tag == "!reset":
        return Reset(value)
    if tag == "!override":
        return Override(value)
    return value


def load_yaml_text(text: str, file: str) -> Any:
    import yaml

    Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return MDict()
        # custom tags are handled in _convert; tell the constructor not to choke on them
        return _convert(node, file, loader, {})
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        where = f"{file}:{m.line + 1}:{m.column + 1}" if m else file
        raise InvalidArgument(f"invalid YAML: {e.problem or e.context}", where=where) from None
    except yaml.YAMLError as e:
        raise InvalidArgument(f"invalid YAML: {e}", where=file) from None
    finally:
        loader.dispose()


def load_yaml(path: Path, display: str | None = None) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidArgument(f"file not found: {path}", hint="pass the compose file with -f") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"cannot read {path}: {e}") from None
    return load_yaml_text(text, display or str(path))


def mark_of(data: Any, path: tuple[Any, ...]) -> Mark | None:
    """The Mark of the deepest value along `path` that has one."""
    best = getattr(data, "mark", None)
    cur = data
    for key in path:
        if isinstance(cur, MDict) and key in cur:
            best = cur.marks.get(key) or best
            cur = cur[key]
        elif isinstance(cur, MList) and isinstance(key, int) and 0 <= key < len(cur):
            best = cur.marks[key] or best
            cur = cur[key]
        elif isinstance(cur, (dict, list)):
            continue  # pydantic's union/validator loc parts: skip them
        else:
            break
    return best


def format_path(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def plain(data: Any) -> Any:
    """Strip MDict/MList down to dict/list (for JSON, hashing)."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data
