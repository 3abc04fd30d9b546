"""`manage.py prewarm [--force]`: install the site template's dependencies once.

Afterwards a new project starts without a network install: its `node_modules` is copied
from the prewarmed folder, and the shared npm cache holds every package. Idempotent. Needs
the preview image (`build_images`). Exit status 1 with a message when it fails.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from doce.docker.failures import StackError
from projects.scaffold import prewarm


class Command(BaseCommand):
    help = "Install the site template's dependencies once, so new projects start offline."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="Install again even if done.")

    def handle(self, *args, force: bool, **options) -> None:
        try:
            result = prewarm(force=force)
        except StackError as exc:
            detail = f"\n{exc.failure.detail}" if exc.failure.detail else ""
            raise CommandError(f"{exc.failure.message}{detail}") from None
        self.stdout.write(f"template dependencies {result.action} in {result.seconds:.1f}s")
