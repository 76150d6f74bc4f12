"""Built-in plugins: registered like any other, replaceable by a plugin that returns first."""
