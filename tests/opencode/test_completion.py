from doce.opencode.completion import CompletionCheck, _judge
from doce.opencode.models import MessageWithParts
from projects.services import record_completion


def message(mid, role, created, completed=None, error=None):
    info = {"id": mid, "role": role, "sessionID": "ses_1", "time": {"created": created}}
    if completed:
        info["time"]["completed"] = completed
    if error:
        info["error"] = error
    return MessageWithParts.model_validate({"info": info, "parts": []})


OLD = [message("msg_a", "user", 100), message("msg_b", "assistant", 110, completed=120)]


def test_an_idle_right_after_the_prompt_is_not_completion():
    # The previous turn is complete, but the new prompt has no answer yet.
    assert _judge(OLD, since_ms=1000, busy_seen=False).state == "pending"
    with_prompt = [*OLD, message("msg_c", "user", 1001)]
    assert _judge(with_prompt, since_ms=1000, busy_seen=False).state == "pending"


def test_a_completed_newer_answer_is_done():
    messages = [*OLD, message("msg_c", "user", 1001), message("msg_d", "assistant", 1002, 1500)]
    check = _judge(messages, since_ms=1000, busy_seen=False)
    assert check == CompletionCheck("done", busy_seen=False, message_id="msg_d")


def test_an_open_answer_is_pending():
    messages = [*OLD, message("msg_c", "user", 1001), message("msg_d", "assistant", 1002)]
    assert _judge(messages, since_ms=1000, busy_seen=True).state == "pending"


def test_failures_are_told_apart():
    prompt = message("msg_c", "user", 1001)
    aborted = message("msg_d", "assistant", 1002, 1003, {"name": "MessageAbortedError"})
    assert _judge([prompt, aborted], since_ms=1000, busy_seen=True).reason == "aborted"
    failed = message(
        "msg_d", "assistant", 1002, 1003, {"name": "APIError", "data": {"message": "bad model"}}
    )
    check = _judge([prompt, failed], since_ms=1000, busy_seen=True)
    assert (check.state, check.reason, check.diagnostic.category) == (
        "failed",
        "agent_error",
        "provider_model",
    )
    no_answer = _judge([prompt], since_ms=1000, busy_seen=True)
    assert (no_answer.state, no_answer.reason) == ("failed", "no_answer")


def test_it_records_only_finished_checks(db, bob):
    from projects.models import Project

    project = Project.objects.create(owner=bob, name="n", prompt="p")
    assert record_completion(project, CompletionCheck("pending", True)) is False
    assert record_completion(project, CompletionCheck("done", True)) is True
    project.refresh_from_db()
    assert project.prompt_completed
