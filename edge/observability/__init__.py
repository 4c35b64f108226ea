"""What an operator sees of a running edge: Prometheus metrics and JSON-lines logs.

``metrics`` defines the metrics and the scrape, ``logs`` the line format and the
non-blocking writers, ``observer`` the hooks the rest of edge calls, ``admin``
the ``/metrics`` endpoint and the log of refused admin calls. The operator's
guide is ``docs/metrics-and-logs.md``.
"""
