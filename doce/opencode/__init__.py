"""OpenCode agent integration: client, diagnostics, event stream, normalizer, relay, completion.

- `doce.opencode.client`: `OpencodeClient` / `AsyncOpencodeClient`, `client_for()`,
  `async_client_for()`, `close_clients()`.
- `doce.opencode.errors`: `OpencodeError`, `Diagnostic`.
- `doce.opencode.agents`: `agent_base_url(project)`, `agent_target(project)`,
  `client_for_project(project)`.
- `doce.opencode.sse` / `doce.opencode.stream`: SSE parser; `EventStream` (reconnecting).
- `doce.opencode.normalize`: `Normalizer` (upstream events → `chat.*` envelopes).
- `doce.opencode.relay`: `relay_hub()` (one upstream per project per web process).
- `doce.opencode.completion`: `check_completion()` (has the agent answered a prompt?).

An adapter: it imports no domain app; `projects` calls it and records what it finds.
"""
