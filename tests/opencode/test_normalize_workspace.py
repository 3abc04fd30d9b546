"""The normalizer's events for the workspace chat: diffs of file tools, the plan rebuilt from
history, restore (revert) state, attachments of user messages, context usage, relative paths.
Recorded from the real OpenCode server where a recording exists, else its shapes."""

from doce.opencode.models import MessageWithParts
from doce.opencode.normalize import Normalizer
from tests.opencode.helpers import messages_from_events, of_type, recording

SESSION = "ses_1"


def _session_updated(**info) -> dict:
    return {"type": "session.updated", "properties": {"info": {"id": SESSION, **info}}}


def test_it_shows_the_diff_of_an_edit_and_the_content_of_a_write():
    normalizer = Normalizer("p")
    finishes = of_type(normalizer.feed_all(recording("tools")), "chat.tool.finish")
    by_name = {f["payload"]["name"]: f["payload"] for f in finishes}
    edit = by_name["edit"]["diff"].splitlines()
    assert edit[:2] == ["--- notes.md", "+++ notes.md"]  # relative, no "Index:" header
    assert "-first line" in edit and "+edited line" in edit
    # The same diff highlighted as Markdown (the file's language), line kinds kept.
    assert (
        '<span class="diff-line diff-ctx"> <span class="gh"># Keep notes</span>'
        in (by_name["edit"]["diffHtml"])
    )
    assert '<span class="diff-line diff-add">+edited line\n</span>' in by_name["edit"]["diffHtml"]
    write = by_name["write"]["diff"].splitlines()
    assert write[2].startswith("@@ new file") and "+first line" in write
    assert "diff" not in by_name["bash"]


def test_it_cuts_a_long_diff_and_says_so():
    normalizer = Normalizer("p", SESSION, directory="/app")
    content = "\n".join(f"line {i}" for i in range(1000))
    part = {
        "id": "prt_1",
        "messageID": "msg_2",
        "sessionID": SESSION,
        "type": "tool",
        "tool": "write",
        "callID": "call_1",
        "state": {
            "status": "completed",
            "input": {"filePath": "/app/src/pages/big.astro", "content": content},
            "output": "ok",
            "metadata": {"exists": True},
        },
    }
    events = normalizer.feed({"type": "message.part.updated", "properties": {"part": part}})
    start, finish = of_type(events, "chat.tool.start")[0], of_type(events, "chat.tool.finish")[0]
    assert start["payload"]["input"]["filePath"] == "src/pages/big.astro"  # never /app/...
    assert finish["payload"]["diffTruncated"] is True
    assert "replaced the whole file" in finish["payload"]["diff"]
    assert len(finish["payload"]["diff"].splitlines()) == 402
    assert finish["payload"]["diffHtml"].count('class="diff-line diff-add"') == 399  # + hunk


def test_a_huge_highlighted_diff_is_sent_as_plain_lines_only():
    normalizer = Normalizer("p", SESSION, directory="/app")
    # 400 long lines of many tokens: far past MAX_DIFF_HTML_CHARS once highlighted.
    content = "\n".join("let a = [" + ", ".join(["1"] * 80) + "];" for _ in range(400))
    part = {
        "id": "prt_1",
        "messageID": "msg_2",
        "sessionID": SESSION,
        "type": "tool",
        "tool": "write",
        "callID": "call_1",
        "state": {
            "status": "completed",
            "input": {"filePath": "/app/src/big.js", "content": content},
            "output": "ok",
            "metadata": {},
        },
    }
    events = normalizer.feed({"type": "message.part.updated", "properties": {"part": part}})
    payload = of_type(events, "chat.tool.finish")[0]["payload"]
    assert len(payload["diff"].splitlines()) == 402
    assert "diffHtml" not in payload  # the chat shows the plain lines


def test_it_announces_a_tool_call_before_its_input_arrives():
    normalizer = Normalizer("p", SESSION)
    base = {"id": "prt_1", "messageID": "msg_2", "sessionID": SESSION, "type": "tool"}
    pending = {**base, "tool": "write", "callID": "c1", "state": {"status": "pending", "input": {}}}
    running = {**pending, "state": {"status": "running", "input": {"filePath": "a.md"}}}
    first = normalizer.feed({"type": "message.part.updated", "properties": {"part": pending}})
    second = normalizer.feed({"type": "message.part.updated", "properties": {"part": running}})
    again = normalizer.feed({"type": "message.part.updated", "properties": {"part": running}})
    assert [e["payload"]["input"] for e in of_type(first, "chat.tool.start")] == [{}]
    assert [e["payload"]["input"] for e in of_type(second, "chat.tool.start")] == [
        {"filePath": "a.md"}
    ]
    assert again == []


def test_it_rebuilds_the_plan_from_history():
    live = Normalizer("p")
    events = live.feed_all(recording("todo"))
    messages = [MessageWithParts.model_validate(m) for m in messages_from_events(recording("todo"))]
    fresh = Normalizer("p")
    fresh.catch_up(messages)
    assert fresh.todos and fresh.todos == live.todos
    plans = of_type(fresh.snapshot(), "chat.todo.updated")
    assert [t["content"] for t in plans[0]["payload"]["todos"]] == [
        "Write the home page",
        "Add a footer",
    ]
    assert of_type(events, "chat.todo.updated")


def test_it_says_where_a_restore_stands():
    normalizer = Normalizer("p", SESSION)
    restored = normalizer.feed(_session_updated(revert={"messageID": "msg_3", "snapshot": "x"}))
    assert [e["payload"] for e in of_type(restored, "chat.session.revert")] == [
        {"messageId": "msg_3"}
    ]
    assert of_type(normalizer.snapshot(), "chat.session.revert")[0]["payload"] == {
        "messageId": "msg_3"
    }
    assert normalizer.feed(_session_updated(revert={"messageID": "msg_3"})) == []
    undone = normalizer.feed(_session_updated())
    assert [e["payload"] for e in of_type(undone, "chat.session.revert")] == [{"messageId": None}]


def test_it_shows_a_user_message_with_its_attachments():
    normalizer = Normalizer("p", SESSION)
    user = {"id": "msg_1", "sessionID": SESSION, "role": "user"}
    parts = [
        {"id": "prt_1", "type": "text", "text": "Use the logo"},
        {
            "id": "prt_2",
            "type": "file",
            "mime": "image/png",
            "filename": "logo.png",
            "url": "data:image/png;base64,AAAA",
        },
        {"id": "prt_3", "type": "file", "mime": "text/plain", "filename": "hours.txt", "url": "x"},
        {"id": "prt_4", "type": "text", "text": "Called the Read tool", "synthetic": True},
    ]
    events = []
    events += normalizer.feed({"type": "message.updated", "properties": {"info": user}})
    for part in parts:
        full = {**part, "messageID": "msg_1", "sessionID": SESSION}
        events += normalizer.feed({"type": "message.part.updated", "properties": {"part": full}})
    said = of_type(events, "chat.message.user")
    assert said[-1]["payload"] == {
        "messageId": "msg_1",
        "text": "Use the logo",
        "attachments": [
            {"name": "logo.png", "mime": "image/png", "url": "data:image/png;base64,AAAA"},
            {"name": "hours.txt", "mime": "text/plain"},
        ],
    }


def test_it_reports_context_usage_against_the_model_limit():
    normalizer = Normalizer("p", SESSION)
    info = {
        "id": "msg_2",
        "sessionID": SESSION,
        "role": "assistant",
        "providerID": "scripted",
        "modelID": "scripted",
        "tokens": {"input": 2000, "output": 40, "reasoning": 0, "cache": {"read": 500, "write": 0}},
    }
    events = normalizer.feed({"type": "message.updated", "properties": {"info": info}})
    assert of_type(events, "chat.usage")[0]["payload"] == {
        "tokens": 2540,
        "model": "scripted/scripted",
    }
    with_limit = normalizer.set_context_limits({"scripted/scripted": 128000})
    assert with_limit[0]["payload"]["limit"] == 128000
    assert normalizer.feed({"type": "message.updated", "properties": {"info": info}}) == []


def test_it_says_when_the_conversation_was_compacted():
    normalizer = Normalizer("p", SESSION)
    events = normalizer.feed({"type": "session.compacted", "properties": {"sessionID": SESSION}})
    assert [e["type"] for e in events] == ["chat.session.compacted"]
    other = {"type": "session.compacted", "properties": {"sessionID": "ses_other"}}
    assert normalizer.feed(other) == []
