"""`wharf gitops`: deploy a compose project from a git branch (sync.py), through a bare mirror
and checkouts (git.py), recording what is deployed (state.py)."""

from __future__ import annotations

from .state import Deployment, all_deployments, deployed
from .sync import GitOps, Outcome, Source

__all__ = ["Deployment", "GitOps", "Outcome", "Source", "all_deployments", "deployed"]
