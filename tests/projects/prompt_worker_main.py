"""Run `manage.py run_worker`, killing itself with SIGKILL at one point of the
`opencode.sendUserPrompt` handler (for process tests):

    DOCE_TEST_KILL_AT=after_send python -m tests.projects.prompt_worker_main --worker-id …

- `before_send`: the handler is about to send the prompt to the agent;
- `after_send`: the agent answered 204 to the prompt, nothing recorded yet;
- `after_recorded`: `prompt_sent` is committed, the job has not succeeded yet.
"""

import os
import signal
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "doce.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from doce.opencode.client import OpencodeClient
    from jobqueue.context import JobContext

    point = os.environ.get("DOCE_TEST_KILL_AT", "")

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    send = OpencodeClient.prompt_async
    enqueue = JobContext.enqueue

    def prompt_async(self, *args, **kwargs):
        if point == "before_send":
            die()
        result = send(self, *args, **kwargs)
        if point == "after_send":
            die()
        return result

    def enqueue_follow_up(self, type, *args, **kwargs):
        if point == "after_recorded" and type == "opencode.awaitIdle":
            die()
        return enqueue(self, type, *args, **kwargs)

    OpencodeClient.prompt_async = prompt_async
    JobContext.enqueue = enqueue_follow_up
    call_command("run_worker", *sys.argv[1:])
