"""The normalizer on event sequences recorded from the real OpenCode server."""

import pytest

from doce.opencode.normalize import Normalizer
from tests.opencode.helpers import messages_from_events, of_type, recording, texts_by_message


def normalize(name: str) -> tuple[Normalizer, list[dict]]:
    normalizer = Normalizer("proj1")
    return normalizer, normalizer.feed_all(recording(name))


def test_it_maps_text_deltas_so_they_add_up_to_the_final_text():
    _, events = normalize("text")
    deltas = [e for e in of_type(events, "chat.message.part.added") if "deltaText" in e["payload"]]
    finals = of_type(events, "chat.message.final")
    assert len(deltas) > 5
    assert len(finals) == 1
    assert "".join(d["payload"]["deltaText"] for d in deltas) == finals[0]["payload"]["text"]
    assert texts_by_message(events) == {
        finals[0]["payload"]["messageId"]: finals[0]["payload"]["text"]
    }


def test_it_wraps_every_event_in_the_envelope():
    normalizer, events = normalize("text")
    assert events
    for event in events:
        assert set(event) == {"type", "projectId", "sessionId", "time", "payload"}
        assert event["projectId"] == "proj1"
        assert event["sessionId"] == normalizer.session_id
        assert event["time"].endswith("Z")


def test_it_reports_a_write_once_with_the_file_it_changed():
    _, events = normalize("write")
    starts, finishes = of_type(events, "chat.tool.start"), of_type(events, "chat.tool.finish")
    # A card as soon as the call is known (no input yet), then again with its input.
    assert {s["payload"]["toolCallId"] for s in starts} == {starts[0]["payload"]["toolCallId"]}
    assert starts[0]["payload"]["name"] == "write"
    assert starts[-1]["payload"]["input"]["filePath"] == "src/pages/index.astro"
    assert "src/pages/index.astro" in finishes[0]["payload"]["diff"]
    assert [f["payload"]["toolCallId"] for f in finishes] == [starts[0]["payload"]["toolCallId"]]
    assert of_type(events, "chat.tool.error") == []
    assert [e["payload"]["path"] for e in of_type(events, "chat.file.changed")] == [
        "src/pages/index.astro"
    ]
    kinds = [e["type"] for e in events]
    assert kinds.index("chat.tool.start") < kinds.index("chat.tool.finish")


def test_it_says_busy_then_idle_and_each_final_once():
    _, events = normalize("tools")
    statuses = [e["payload"]["status"] for e in of_type(events, "chat.session.status")]
    assert statuses == ["busy", "idle"]  # repeated busy statuses are not repeated
    final_ids = [e["payload"]["messageId"] for e in of_type(events, "chat.message.final")]
    assert len(final_ids) == len(set(final_ids)) == 4
    names = [s["payload"]["name"] for s in of_type(events, "chat.tool.start")]
    assert list(dict.fromkeys(names)) == ["write", "edit", "bash"]
    assert len(of_type(events, "chat.tool.finish")) == 3
    kinds = [e["type"] for e in events]
    assert kinds.index("chat.message.final") < len(kinds) - 1
    assert kinds[-1] == "chat.session.status"  # messages end before the session is idle


def test_it_suppresses_the_user_echo_and_announces_the_user_message_once():
    _, events = normalize("write")
    users = of_type(events, "chat.message.user")
    assert [u["payload"]["text"] for u in users] == ["[script:default] A bakery in Lisbon"]
    assert users[0]["payload"]["messageId"] not in texts_by_message(events)


def test_it_maps_reasoning_separately_from_text():
    _, events = normalize("reasoning")
    reasoning = of_type(events, "chat.reasoning.part")
    assert "".join(r["payload"].get("deltaText", "") for r in reasoning).startswith("The user")
    final = of_type(events, "chat.message.final")[0]["payload"]
    assert final["text"].startswith("Here is my answer") and "The user" not in final["text"]


def test_it_reports_a_failed_tool_as_an_error():
    _, events = normalize("tool_error")
    errors = of_type(events, "chat.tool.error")
    assert len(errors) == 1 and "not found" in errors[0]["payload"]["error"]
    assert of_type(events, "chat.tool.finish") == []


def test_it_turns_a_provider_error_into_one_card_on_the_failed_final():
    _, events = normalize("provider_error")
    # One card per failure: the failed final carries the diagnostic, and the session error
    # that follows does not repeat it.
    assert of_type(events, "chat.diagnostic") == []
    (final,) = of_type(events, "chat.message.final")
    diagnostic = final["payload"]["error"]["diagnostic"]
    assert diagnostic["category"] == "provider_model"
    assert diagnostic["title"] == "Model error"
    assert "does not support this request" in diagnostic["message"]
    assert "127.0.0.1" not in str(diagnostic)  # response metadata is not copied
    assert final["payload"]["error"]["name"] == "APIError"


def test_it_ends_an_aborted_message_once_without_a_diagnostic():
    _, events = normalize("abort")
    (final,) = of_type(events, "chat.message.final")
    assert final["payload"]["aborted"] is True
    assert final["payload"]["error"]["name"] == "MessageAbortedError"
    assert final["payload"]["text"].startswith("word00")
    assert of_type(events, "chat.diagnostic") == []


def test_it_maps_permission_requests_and_replies():
    _, events = normalize("permission")
    (asked,) = of_type(events, "chat.permission.requested")
    (replied,) = of_type(events, "chat.permission.resolved")
    assert asked["payload"]["permission"] == "bash"
    assert asked["payload"]["patterns"] == ["echo permitted"]
    assert asked["payload"]["toolCallId"]
    assert replied["payload"] == {"requestId": asked["payload"]["requestId"], "reply": "once"}


@pytest.mark.parametrize(("name", "rejected"), [("question", False), ("question_rejected", True)])
def test_it_maps_questions_and_their_answers(name, rejected):
    _, events = normalize(name)
    (asked,) = of_type(events, "chat.question.requested")
    (resolved,) = of_type(events, "chat.question.resolved")
    assert asked["payload"]["questions"][0]["header"] == "Colour"
    assert resolved["payload"]["requestId"] == asked["payload"]["requestId"]
    assert resolved["payload"]["rejected"] is rejected
    if not rejected:
        assert resolved["payload"]["answers"] == [["Red"]]


def test_it_maps_todo_updates():
    _, events = normalize("todo")
    (todo,) = of_type(events, "chat.todo.updated")
    assert todo["payload"]["todos"][0] == {
        "content": "Write the home page",
        "status": "completed",
        "priority": "high",
    }


def test_it_maps_title_changes_but_not_placeholder_titles():
    _, events = normalize("write")
    assert [e["payload"]["title"] for e in of_type(events, "chat.session.title")] == [
        "A bakery in Lisbon"
    ]


def test_it_filters_out_other_sessions_but_keeps_project_wide_events():
    normalizer = Normalizer("proj1", session_id="ses_someone_else")
    kinds = {e["type"] for e in normalizer.feed_all(recording("write"))}
    assert kinds == {"chat.file.changed"}  # file.edited names no session


def test_it_drops_unknown_types_and_uses_heartbeats_only_for_liveness():
    normalizer = Normalizer("proj1")
    assert normalizer.feed({"type": "server.heartbeat", "properties": {}}) == []
    assert normalizer.last_heartbeat > 0
    assert normalizer.feed({"type": "plugin.added", "properties": {"id": "x"}}) == []
    assert normalizer.feed({"type": "lsp.updated"}) == []


def test_catch_up_adds_only_what_was_missed():
    events = recording("write")
    cut = next(i for i, e in enumerate(events) if e["type"] == "message.part.delta") + 1
    normalizer = Normalizer("proj1")
    seen = normalizer.feed_all(events[:cut])
    missed = normalizer.catch_up(messages_from_events(events))
    shown = texts_by_message(seen + missed)
    finals = of_type(seen + missed, "chat.message.final")
    assert [f["payload"]["text"] for f in finals] == [
        shown[f["payload"]["messageId"]] for f in finals
    ]
    assert len(finals) == 2
    assert len(of_type(seen + missed, "chat.tool.finish")) == 1
    # Catching up again says nothing new.
    assert normalizer.catch_up(messages_from_events(events)) == []


def test_snapshot_rebuilds_the_conversation_in_the_live_shapes():
    live, events = normalize("write")
    rebuilt = Normalizer("proj1")
    rebuilt.catch_up(messages_from_events(recording("write")))
    for normalizer in (live, rebuilt):
        snapshot = normalizer.snapshot()
        kinds = [e["type"] for e in snapshot]
        assert kinds[0] == "chat.message.user"
        assert kinds.count("chat.message.final") == 2
        assert kinds.count("chat.tool.start") == kinds.count("chat.tool.finish") == 1
    live_finals = [e["payload"] for e in of_type(live.snapshot(), "chat.message.final")]
    rebuilt_finals = [e["payload"] for e in of_type(rebuilt.snapshot(), "chat.message.final")]
    assert live_finals == rebuilt_finals
    assert live_finals == [e["payload"] for e in of_type(events, "chat.message.final")]


def test_an_idle_session_closes_a_message_left_open():
    normalizer = Normalizer("p", "ses_1")
    normalizer.feed(
        {
            "type": "message.updated",
            "properties": {
                "info": {
                    "id": "msg_1",
                    "role": "assistant",
                    "sessionID": "ses_1",
                    "time": {"created": 1},
                }
            },
        }
    )
    normalizer.feed(
        {
            "type": "message.part.delta",
            "properties": {
                "sessionID": "ses_1",
                "messageID": "msg_1",
                "partID": "prt_1",
                "field": "text",
                "delta": "half",
            },
        }
    )
    events = normalizer.feed(
        {"type": "session.status", "properties": {"sessionID": "ses_1", "status": {"type": "idle"}}}
    )
    assert [e["type"] for e in events] == ["chat.message.final", "chat.session.status"]
    assert events[0]["payload"]["interrupted"] is True and events[0]["payload"]["text"] == "half"
