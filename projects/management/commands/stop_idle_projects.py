"""`manage.py stop_idle_projects`: stop running projects nobody has viewed for a while."""

from django.core.management.base import BaseCommand

from projects.presence import prune_stale_viewers
from projects.services import stop_idle_projects


class Command(BaseCommand):
    help = (
        "Stop running projects with no live viewer for DOCE_IDLE_STOP_SECONDS "
        "(the worker does this every 30 s; this is for cron)."
    )

    def handle(self, *args, **options) -> str:
        pruned = prune_stale_viewers()
        stopped = stop_idle_projects()
        return f"Stopped {stopped} idle project(s); forgot {pruned} stale viewer(s)."
