"""`wharf gitops`: deploy a compose project from a git branch (sync.py: one pass), through a
bare mirror and checkouts (git.py), recording what is deployed (state.py); the watcher
(watcher.py) repeats passes on an interval, a local ref change (trigger.py) or a webhook (hook.py)."""

from __future__ import annotations

from .state import Deployment, all_deployments, deployed
from .sync import GitOps, Outcome, Source

__all__ = ["Deployment", "GitOps", "Outcome", "Source", "all_deployments", "deployed"]
