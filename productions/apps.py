from django.apps import AppConfig


class ProductionsConfig(AppConfig):
    """Production deployments: releases, build/start/stop handlers, rollback."""

    name = "productions"
    verbose_name = "Productions"
