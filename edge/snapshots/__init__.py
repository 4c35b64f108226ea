"""Immutable content snapshots: the model, the store protocol and its backends,
and the promotion logic that moves environment pointers between snapshots."""
