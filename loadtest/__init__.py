"""Locust load tests: one locustfile per scenario, ``common/`` for the User base classes,
``locust.conf`` for the defaults. ``run.py`` (``make loadtest``: workflow runs through the Python
client) and ``http_run.py`` (``make loadtest-http``: the same through the HTTP API, which it starts
too) start redis-server and the worker processes around a headless locust run; ``common_run.py``
holds what both runners share."""
