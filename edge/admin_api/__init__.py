"""The admin API (v1): a separate listener, JSON in and out, bearer tokens."""
