"""Every sample project of ../shared/corpus/compose loads (or fails only with a named,
unsupported key) and plans offline against an empty machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import InvalidArgument

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "compose"
PROJECTS = sorted(p for p in CORPUS.iterdir() if p.is_dir()) if CORPUS.is_dir() else []


@pytest.mark.skipif(not PROJECTS, reason="../shared/corpus/compose is not beside the clone")
@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_corpus_project_loads_and_plans(project: Path) -> None:
    from reconciler.observe import Observed
    from reconciler.plan import plan
    from reconciler.spec import find_files, load_project

    files = [str(f) for f in find_files(None, project)]
    try:
        loaded = load_project(files, environ={})
    except InvalidArgument as e:
        assert "unsupported key" in str(e) and ":" in (e.where or ""), str(e)
        return
    p = plan(loaded, Observed.empty(loaded.project.name))
    kinds = {op.kind for op in p.operations}
    assert "create" in kinds
    assert kinds & {"pull", "build"}, p.text()
    # nothing is observed: every service gets its image pulled or built, once per image
    images = [op.resource for op in p.operations if op.kind in ("pull", "build")]
    assert len(images) == len(set(images))


@pytest.mark.skipif(not PROJECTS, reason="../shared/corpus/compose is not beside the clone")
def test_corpus_files_match_the_json_schema() -> None:
    """schemas/compose.schema.json accepts the corpus as written (short syntaxes included),
    except where a key is unsupported (the loader names those)."""
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from reconciler.spec.schema import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    for project in PROJECTS:
        for f in sorted(project.glob("*compose.y*ml")):
            errors = [e for e in validator.iter_errors(yaml.safe_load(f.read_text()))
                      if "Additional properties" not in e.message]
            assert not errors, f"{f}: {errors[0].json_path}: {errors[0].message}"
