"""Teacher corpora: convert, filter, inspect and generate per-teacher chain-of-thought data."""
