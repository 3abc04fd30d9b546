"""`manage.py queue_reap`: recover jobs whose lease expired (for cron; workers also do it)."""

from django.core.management.base import BaseCommand

from jobqueue.services import reap_expired_leases


class Command(BaseCommand):
    help = (
        "Return running jobs whose lease expired to queued (or fail them when their "
        "attempts are spent). Workers run this every DOCE_QUEUE_REAP_SECONDS."
    )

    def handle(self, **options) -> None:
        recovered = reap_expired_leases()
        self.stdout.write(f"Recovered {recovered} job(s) with an expired lease.")
