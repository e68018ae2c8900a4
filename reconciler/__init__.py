"""Wharf's declarative reconciler: spec -> observe -> plan -> apply."""
