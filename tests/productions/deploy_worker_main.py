"""Run `manage.py run_worker`, killing itself with SIGKILL at one point of a deploy (for
process tests of production deploys):

    DOCE_TEST_KILL_AT=wait_ready python -m tests.productions.deploy_worker_main --concurrency 1

- `build_done`: `production.build`'s builder container has finished, its output is in the
  build folder, nothing is hashed, moved or recorded yet;
- `wait_ready`: `production.waitReady` holds its job and is about to probe the new
  release's container (started, not yet switched to).

Without `DOCE_TEST_KILL_AT` it is a plain worker.
"""

import os
import signal
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from productions import jobs

    point = os.environ.get("DOCE_TEST_KILL_AT", "")

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    run_builder = jobs.run_builder
    answers = jobs.answers

    def run_builder_then_die(*args, **kwargs):
        run_builder(*args, **kwargs)
        if point == "build_done":
            die()

    def die_before_probe(*args, **kwargs):
        if point == "wait_ready":
            die()
        return answers(*args, **kwargs)

    # The handlers look these names up in their module at call time.
    jobs.run_builder = run_builder_then_die
    jobs.answers = die_before_probe
    call_command("run_worker", *sys.argv[1:])
