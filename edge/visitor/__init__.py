"""The visitor-facing proxy: host and path resolution, representations, the handler."""
