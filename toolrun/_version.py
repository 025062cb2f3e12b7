"""toolrun's version: one place that the package, its metadata and its clients (MCP, eval results) read."""

__version__ = "0.1.0"
