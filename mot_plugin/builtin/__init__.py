"""Built-in plugins: registered like any other, replaceable by a plugin that returns first.

What the recipe schema needs to know of them, without importing them: the names it selects by
default, and the keys of `launch` that moved into a built-in launcher's own block."""

DEFAULT_LAUNCHER = "local"
DEFAULT_MERGE_EXECUTOR = "mergekit"
DEFAULT_EVAL_BACKEND = "transformers"
MOVED_LAUNCH_KEYS = {"devices": "local"}
"""`launch.<key>` is read as `launch.<block>.<key>` (its old place, still accepted with a note)."""
