"""Docker's `label=` filter: the one matcher containers, images, networks, volumes and events share."""

from __future__ import annotations


def match_labels(labels: dict[str, str], wanted: list[str]) -> bool:
    """Every `k` or `k=v` in wanted is present in labels."""
    for w in wanted:
        k, sep, v = w.partition("=")
        if k not in labels or (sep and labels[k] != v):
            return False
    return True
