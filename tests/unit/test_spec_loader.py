"""Loader: merge (13-merge.md), profiles (15), extends, include (14), errors with file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.spec import load_project
from runtime.errors import InvalidArgument


def write(d: Path, files: dict[str, str]) -> list[str]:
    out = []
    for name, text in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        out.append(str(p))
    return out


def load(d: Path, files: dict[str, str], use: list[str] | None = None, **kw):
    paths = write(d, files)
    sel = [str(d / u) for u in use] if use else [p for p in paths if p.endswith((".yaml", ".yml"))][:1]
    kw.setdefault("environ", {})
    return load_project(sel, **kw).project


def error(d: Path, files: dict[str, str], **kw) -> str:
    with pytest.raises(InvalidArgument) as e:
        load(d, files, **kw)
    return str(e.value)


def test_merge_mapping_sequence_and_exceptions(tmp_path: Path) -> None:
    p = load(tmp_path, {
        "compose.yaml": """
            services:
              foo:
                image: a
                command: ["echo", "foo"]
                dns: [1.1.1.1]
                environment: {A: "1", B: "2"}
                ports: ["8080:80", "9000:90"]
                volumes: ["foo:/work", "./x:/x"]
                healthcheck: {test: ["CMD", "a"], retries: 2}
            volumes: {foo: {}, bar: {}}
        """,
        "override.yaml": """
            services:
              foo:
                image: b
                command: ["echo", "bar"]
                dns: [8.8.8.8]
                environment: [B=3, C=4]
                ports: ["8080:80/udp", "9000:90"]
                volumes: ["bar:/work"]
                healthcheck: {test: ["CMD", "b"]}
        """}, use=["compose.yaml", "override.yaml"])
    foo = p.services["foo"]
    assert foo.image == "b"
    assert foo.command == ["echo", "bar"]
    assert foo.dns == ["1.1.1.1", "8.8.8.8"]
    assert foo.environment == {"A": "1", "B": "3", "C": "4"}
    assert [(x.published, x.target, x.protocol) for x in foo.ports] == [
        (8080, 80, "tcp"), (9000, 90, "tcp"), (8080, 80, "udp")]
    assert [(v.source, v.target) for v in foo.volumes] == [("bar", "/work"), (str(tmp_path / "x"), "/x")]
    assert foo.healthcheck.test == ["CMD", "b"] and foo.healthcheck.retries == 2


def test_reset_and_override(tmp_path: Path) -> None:
    p = load(tmp_path, {
        "compose.yaml": """
            services:
              app:
                image: myapp
                ports: ["8080:80"]
                environment: {FOO: BAR, KEEP: "1"}
        """,
        "o.yaml": """
            services:
              app:
                image: myapp
                ports: !reset []
                environment:
                  FOO: !reset null
        """,
        "o2.yaml": """
            services:
              app:
                ports: !override
                  - "8443:443"
        """}, use=["compose.yaml", "o.yaml"])
    assert p.services["app"].ports == [] and p.services["app"].environment == {"KEEP": "1"}
    p2 = load_project([str(tmp_path / "compose.yaml"), str(tmp_path / "o2.yaml")], environ={}).project
    assert [(x.published, x.target) for x in p2.services["app"].ports] == [(8443, 443)]


def test_interpolation_from_dotenv_and_environment(tmp_path: Path) -> None:
    p = load(tmp_path, {
        ".env": "TAG=1.0\nPORT=8080\nNAME_FROM_ENV=dotenv\n",
        "compose.yaml": """
            services:
              web:
                image: "busybox:${TAG}"
                ports: ["${PORT}:80"]
                command: ["echo", "$$HOME", "${NAME_FROM_ENV}", "${MISSING:-dflt}"]
                labels: ["$LABEL_KEY=x"]
        """}, environ={"NAME_FROM_ENV": "shell", "LABEL_KEY": "k"})
    web = p.services["web"]
    assert web.image == "busybox:1.0" and web.ports[0].published == 8080
    assert web.command == ["echo", "$HOME", "shell", "dflt"]
    assert web.labels == {"k": "x"}


def test_required_variable_names_file_line(tmp_path: Path) -> None:
    msg = error(tmp_path, {"compose.yaml": """
        services:
          web:
            image: "busybox:${TAG:?set TAG}"
    """})
    assert "compose.yaml:4:" in msg and "services.web.image" in msg and "set TAG" in msg


def test_profiles(tmp_path: Path) -> None:
    files = {"compose.yaml": """
        services:
          foo: {image: foo}
          bar: {image: bar, profiles: [test]}
          baz: {image: baz, depends_on: [bar], profiles: [test]}
          zot: {image: zot, depends_on: [bar], profiles: [debug]}
    """}
    assert set(load(tmp_path, files).services) == {"foo"}
    assert set(load(tmp_path, files, profiles=["test"]).services) == {"foo", "bar", "baz"}
    assert set(load(tmp_path, files, environ={"WHARF_PROFILES": "test,debug"}).services) == {
        "foo", "bar", "baz", "zot"}
    msg = error(tmp_path, files, profiles=["debug"])
    assert "services.zot.depends_on.bar" in msg and "unknown service 'bar'" in msg


def test_extends_same_and_other_file(tmp_path: Path) -> None:
    p = load(tmp_path, {
        "common.yml": """
            services:
              webapp:
                image: busybox
                environment: {TZ: utc, PORT: "80"}
                volumes: ["./data:/data"]
                security_opt: [label:role:ROLE]
        """,
        "compose.yaml": """
            services:
              base: {image: busybox, user: root}
              common:
                image: busybox
                extends: {service: base}
              cli:
                extends: {service: common}
              web:
                extends: {file: common.yml, service: webapp}
                environment: [PORT=8080]
                security_opt: [label:user:USER]
        """}, use=["compose.yaml"])
    assert p.services["cli"].user == "root" and p.services["cli"].image == "busybox"
    web = p.services["web"]
    assert web.environment == {"TZ": "utc", "PORT": "8080"}
    assert web.security_opt == ["label:role:ROLE", "label:user:USER"]
    assert web.volumes[0].source == str(tmp_path / "data")  # relative to the file that holds it


def test_extends_cycle(tmp_path: Path) -> None:
    msg = error(tmp_path, {"compose.yaml": """
        services:
          a: {image: x, extends: b}
          b: {image: x, extends: a}
    """})
    assert "extends cycle" in msg


def test_include(tmp_path: Path) -> None:
    p = load(tmp_path, {
        "sub/compose.yaml": """
            services:
              db: {image: "postgres:${PGTAG}", volumes: ["./init:/init"]}
        """,
        "sub/.env": "PGTAG=16\n",
        "compose.yaml": """
            include: [sub/compose.yaml]
            services:
              app: {image: app, depends_on: [db]}
        """}, use=["compose.yaml"])
    assert p.services["db"].image == "postgres:16"
    assert p.services["db"].volumes[0].source == str(tmp_path / "sub" / "init")


def test_project_name(tmp_path: Path) -> None:
    d = tmp_path / "My_Dir"
    d.mkdir()
    assert load(d, {"compose.yaml": "services: {a: {image: x}}\n"}).name == "my_dir"
    assert load(d, {"compose.yaml": "name: other\nservices: {a: {image: x}}\n"}).name == "other"
    assert load(d, {"compose.yaml": "name: other\nservices: {a: {image: x}}\n"}, project_name="cli").name == "cli"


def test_env_file_merged_into_environment(tmp_path: Path) -> None:
    p = load(tmp_path, {
        "app.env": "A=1\nB=2\n",
        "compose.yaml": """
            services:
              a:
                image: x
                env_file: app.env
                environment: {B: "3", FROM_SHELL: null, ABSENT: null}
        """}, environ={"FROM_SHELL": "s"})
    assert p.services["a"].environment == {"A": "1", "B": "3", "FROM_SHELL": "s"}


@pytest.mark.parametrize("text,fragments", [
    ("services:\n  web:\n    image: [unclosed\n", ["compose.yaml:", "invalid YAML"]),
    ("services:\n  web:\n    image: x\n    ports: {a: 1}\n", ["compose.yaml:4:", "services.web.ports"]),
    ("services:\n  web:\n    image: x\n    read_only: maybe\n", ["compose.yaml:4:", "services.web.read_only"]),
    ("services:\n  web:\n    image: x\n    depends_on: [nope]\n", ["compose.yaml:4:", "unknown service 'nope'"]),
    ("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
     ["dependency cycle: a -> b -> a"]),
    ("services:\n  web:\n    image: x\n    ports:\n      - 80:80\n      - 70000:80\n",
     ["compose.yaml:6:9", "services.web.ports[1]", "invalid port"]),
    ("services:\n  web:\n    image: x\n    env_file: missing.env\n",
     ["compose.yaml:4:", "services.web.env_file[0]", "not found"]),
    ("services:\n  web:\n    image: x\n    links: [db]\n",
     ["compose.yaml:4:", "services.web.links", "unsupported key 'links'"]),
    ("services:\n  web:\n    image: x\n    imagee: y\n", ["unknown key 'imagee'"]),
    ("services:\n  web:\n    command: x\n", ["needs 'image' or 'build'"]),
    ("services:\n  web:\n    image: x\n    volumes: [data:/d]\n", ["volume 'data' is not declared"]),
    ("services:\n  web:\n    image: x\n    healthcheck: {interval: soon}\n", ["invalid duration"]),
    ("services: [web]\n", ["compose.yaml:1:", "services must be a mapping"]),
    ("services: {a: {image: x}}\nconfigs: [c]\n", ["compose.yaml:2:", "configs"]),
    ("services: {a: {image: x}}\nsecrets: 3\n", ["compose.yaml:2:", "secrets"]),
])
def test_bad_input(tmp_path: Path, text: str, fragments: list[str]) -> None:
    msg = error(tmp_path, {"compose.yaml": text})
    for f in fragments:
        assert f in msg, msg


def test_ignore_unsupported_warns(tmp_path: Path) -> None:
    warnings: list[str] = []
    p = load(tmp_path, {"compose.yaml": "services:\n  web:\n    image: x\n    links: [db]\n    shm_size: 1g\n"},
             ignore_unsupported=True, warn=warnings.append)
    assert "web" in p.services
    assert any("links" in w and "compose.yaml:4" in w for w in warnings)
    assert any("shm_size" in w for w in warnings)


def test_extensions_and_x_wharf_images(tmp_path: Path) -> None:
    p = load(tmp_path, {"compose.yaml": """
        x-anything: {a: 1}
        x-wharf:
          images:
            - image: busybox:latest
            - image: local/tool
              build: ./tool
        services:
          web: {image: x, x-note: hi}
    """})
    assert [i.image for i in p.x_wharf.images] == ["busybox:latest", "local/tool"]
    assert p.x_wharf.images[1].build.context == str(tmp_path / "tool")


def test_schema_is_current() -> None:
    from reconciler.spec.schema import SCHEMA_FILE, render

    assert SCHEMA_FILE.read_text() == render(), "run: python -m reconciler.spec.schema"
