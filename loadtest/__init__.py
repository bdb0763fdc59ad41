"""Locust load tests (``make loadtest``): one locustfile per scenario, ``common/`` for the User
base classes, ``locust.conf`` for the defaults, ``run.py`` for the runner that starts redis-server
and the worker processes around a headless locust run."""
