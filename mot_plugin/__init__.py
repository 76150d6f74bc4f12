"""Merge-of-Thought distillation for Axolotl."""

__version__ = "0.1.0"
