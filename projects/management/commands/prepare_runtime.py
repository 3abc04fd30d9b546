"""`manage.py prepare_runtime`: get this host ready to run projects, never blocking start-up.

Run by `make run` before the server starts. Builds the preview and agent images when they
are missing (`--offline` builds them without a container registry, as
`manage.py build_images --offline` does), then prewarms the site template's dependencies so
new projects start without a network install. Each step that fails is reported with what to
do, and the command still exits 0: doce starts and says that projects cannot run yet.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from docker.errors import DockerException
from requests.exceptions import RequestException

from doce.docker.engine import engine_status
from doce.docker.images import ImageBuildError, build_images, images_present
from projects.scaffold import prewarm


class Command(BaseCommand):
    help = "Build missing project images and prewarm the site template (never fails)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--offline",
            action="store_true",
            help="Build missing images without a container registry.",
        )

    def handle(self, *args, offline: bool, **options) -> None:
        engine = engine_status()
        if not engine.reachable:
            self.stdout.write(self.style.WARNING(engine.error))
            return
        if not self._images(offline):
            return
        self._prewarm()

    def _images(self, offline: bool) -> bool:
        try:
            if images_present():
                return True
            self.stdout.write("Building the project images (first run; this takes a few minutes)…")
            build_images(offline=offline, say=self.stdout.write)
        except (ImageBuildError, DockerException, RequestException, OSError) as exc:
            self.stdout.write(
                self.style.WARNING(
                    f"Could not build the project images: {exc}. Projects cannot start until "
                    "`manage.py build_images` succeeds (add --offline without a container "
                    "registry)."
                )
            )
            return False
        return True

    def _prewarm(self) -> None:
        try:
            result = prewarm()
        except Exception as exc:  # a failed prewarm only makes the first start slower
            self.stdout.write(
                self.style.WARNING(
                    f"Could not prewarm the site template ({exc.__class__.__name__}); new "
                    "projects will install their dependencies on first start."
                )
            )
            return
        if result.action != "reused":
            self.stdout.write(f"Prewarmed the site template in {result.seconds:.0f}s.")
