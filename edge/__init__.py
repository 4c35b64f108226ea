"""edge: a reverse proxy and content router for sites with staging and production."""

__version__ = "0.1.0"
