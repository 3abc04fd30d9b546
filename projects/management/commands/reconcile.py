"""`manage.py reconcile [--json]`: compare the database with the Engine's stacks once.

Removes stacks of deleted projects, marks projects whose containers vanished, and lists the
projects that should be running but aren't (see `projects.reconcile`). Exit status 1 when
the Engine is unreachable.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from projects.reconcile import reconcile


class Command(BaseCommand):
    help = "Reconcile project stacks on the Docker Engine with the database."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, json: bool, **options) -> None:
        report = reconcile(follow_logs=False)
        if report.engine_error:
            raise CommandError(report.engine_error)
        if json:
            self.stdout.write(_dumps(report.as_dict()))
            return
        self.stdout.write(f"removed orphan stacks: {', '.join(report.removed) or 'none'}")
        self.stdout.write(f"marked gone: {', '.join(report.marked_gone) or 'none'}")
        self.stdout.write(f"should be running: {', '.join(report.needs_start) or 'none'}")


_dumps = json.dumps
