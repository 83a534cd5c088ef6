"""The running service: Redis as the system of record, account engines, hot reload, scheduler, HTTP API.

See docs/service.md. ``engine.service.coordinator`` is the embeddable async API for Python pipelines.
"""
