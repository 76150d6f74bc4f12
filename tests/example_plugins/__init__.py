"""The example plugins of docs/plugins.md, one per registry (each shown there in full)."""
