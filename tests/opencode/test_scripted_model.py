"""The scripted model fixture itself: script choice, turns and the OpenAI stream shape."""

import json

import httpx

from tests.scripted_model import ScriptedModelServer, opencode_provider_config


def chat(server: ScriptedModelServer, messages: list[dict], tools: bool = True) -> list[dict]:
    body = {"model": "scripted", "stream": True, "messages": messages}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "write"}}]
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_it_plays_the_default_script_turn_by_turn():
    server = ScriptedModelServer().start()
    try:
        user = {"role": "user", "content": [{"type": "text", "text": "A <b>bakery</b> site"}]}
        first = chat(server, [user])
        calls = [c for chunk in first for c in chunk["choices"][0]["delta"].get("tool_calls", [])]
        assert first[-1]["choices"][0]["finish_reason"] == "tool_calls"
        arguments = json.loads(calls[0]["function"]["arguments"])
        assert arguments["filePath"] == "src/pages/index.astro"
        assert "<h1>A &lt;b&gt;bakery&lt;/b&gt; site</h1>" in arguments["content"]
        second = chat(server, [user, {"role": "assistant", "content": "x"}])
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in second)
        assert text.startswith("Done: the home page") and "bakery" in text
        assert second[-1]["choices"][0]["finish_reason"] == "stop"
        assert len(server.requests) == 2
    finally:
        server.stop()


def test_it_picks_scripts_by_marker_and_answers_side_requests():
    server = ScriptedModelServer().start()
    try:
        chunks = chat(server, [{"role": "user", "content": "[script:reasoning] tea"}])
        deltas = [c["choices"][0]["delta"] for c in chunks]
        assert any("reasoning_content" in d for d in deltas)
        title = chat(
            server,
            [
                {"role": "system", "content": "You are a title generator."},
                {"role": "user", "content": "[script:slow] Tea time"},
            ],
            tools=False,
        )
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in title)
        assert text == "Tea time"
        error = httpx.post(
            f"{server.base_url}/chat/completions",
            json={
                "stream": True,
                "tools": [{}],
                "messages": [{"role": "user", "content": "[script:provider-error] x"}],
            },
        )
        assert error.status_code == 400 and "scripted failure" in error.json()["error"]["message"]
        assert httpx.get(f"{server.base_url}/models").json()["data"][0]["id"] == "scripted"
    finally:
        server.stop()


def test_it_gives_the_opencode_provider_config():
    config = opencode_provider_config("http://10.0.0.1:9/v1")
    assert config["model"] == "scripted/scripted"
    assert config["provider"]["scripted"]["options"]["baseURL"] == "http://10.0.0.1:9/v1"
