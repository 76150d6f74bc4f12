"""The `mot` commands, by what they do: `planning` (plan, check, init), `runs` (run, status, report,
compare, eval, push), `setup` (toy, student-from-gguf); `common` holds what they share."""
