"""Docker Engine adapters: engine client, compose runner, logs, health.

See docs/architecture.md for how the pieces fit.
"""
