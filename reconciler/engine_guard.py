"""An Engine wrapper that turns a missing engine part (a module not written yet, a method
not implemented) into one clear EngineUnavailable error instead of a traceback."""

from __future__ import annotations

from typing import Any

from runtime.errors import RuntimeFailure


class EngineUnavailable(RuntimeFailure):
    """This build's engine cannot provide a part (e.g. networks)."""


UNAVAILABLE = (ImportError, NotImplementedError, EngineUnavailable)


class GuardedEngine:
    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._engine, name)
        except (ImportError, NotImplementedError) as e:
            raise EngineUnavailable(f"the engine cannot provide {name!r} yet: {e}",
                                    hint="this part of the engine is not available in this build") from None


def connect() -> Any:
    from runtime.engine import connect as _connect

    return GuardedEngine(_connect())
