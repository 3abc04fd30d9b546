"""Run `manage.py run_worker` with the test handlers registered (for subprocess tests).

python -m tests.jobqueue.worker_main --concurrency 2 ...
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    import django

    django.setup()
    from django.core.management import call_command

    import tests.jobqueue.handlers  # noqa: F401 - registers the test job types

    call_command("run_worker", *sys.argv[1:])
