"""`manage.py queue_prune`: delete old finished jobs (for cron; workers also do it hourly)."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobqueue.services import prune_finished_jobs


class Command(BaseCommand):
    help = (
        "Delete finished jobs (and their logs) older than --days "
        "(default: DOCE_QUEUE_PRUNE_AFTER_DAYS)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=float, default=None, help="Age in days (default 7).")

    def handle(self, *, days: float | None, **options) -> None:
        days = settings.DOCE_QUEUE_PRUNE_AFTER_DAYS if days is None else days
        if days < 0:
            raise CommandError("--days must not be negative")
        deleted = prune_finished_jobs(timedelta(days=days))
        self.stdout.write(f"Deleted {deleted} finished job(s) older than {days:g} day(s).")
