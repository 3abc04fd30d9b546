"""A provider key planted in Settings never appears in a page, an API answer, an event, a job
record, a log line, the export, the site or any file of the project's stack: the agent's
config (mode 0600, outside `site/`) holds the gateway's URL and the project's gateway token
instead. (`tests/integration/test_gateway.py` checks the running container itself.)"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
import zlib
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import ProviderCredential
from accounts.services import create_api_token
from doce.logging import configure_logging
from doce.models import Event
from jobqueue.models import Job, JobLog
from projects import jobs as project_jobs
from projects import runtime
from projects.models import Project
from projects.ports import allocate_ports
from projects.scaffold import scaffold_site
from tests.projects.conftest import PLANTED_KEY, snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]

# An OpenAI-compatible endpoint's key has no recognisable shape: only never writing it
# anywhere keeps it secret (redaction by pattern cannot catch it).
PLANTED_LOCAL_KEY = "PLANTEDlocalKEY7c1e9b3d5f"
real_render_stack = runtime.render_stack


@pytest.fixture
def json_logs(capsys):
    """Call `json_logs.start()` in the test body (the handler binds that phase's stdout)."""

    class Capture:
        def start(self):
            configure_logging(level="DEBUG", fmt="json")

        def __call__(self) -> str:
            return capsys.readouterr().out

    yield Capture()
    configure_logging(level="WARNING", fmt="json")


def _ports_without_docker(project):
    # The real allocation; a re-check of allocated ports would ask Docker for the stack.
    if project.preview_port is None:
        return allocate_ports(project)
    return project.preview_port, project.agent_port


def _assert_clean(where: str, data: bytes | str) -> None:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    assert PLANTED_KEY not in text, f"the provider key leaked into {where}"
    assert PLANTED_KEY[-20:] not in text, f"part of the provider key leaked into {where}"
    assert PLANTED_LOCAL_KEY not in text, f"the local key leaked into {where}"


def _git_objects(site: Path):
    for path in (site / ".git" / "objects").rglob("*"):
        if path.is_file() and len(path.parent.name) == 2:
            yield path, zlib.decompress(path.read_bytes())


def test_it_never_shows_a_planted_provider_key(
    alice, settings, tmp_path, json_logs, worker, fake_runtime, monkeypatch
):
    json_logs.start()
    settings.DATA_DIR = tmp_path / "data"
    settings.DOCE_CACHE_DIR = tmp_path / "cache"
    client = Client()
    client.force_login(alice)

    # Plant the keys through the settings form, as a user would.
    openrouter = {"kind": "openrouter", "api_key": PLANTED_KEY}
    assert client.post("/settings/providers/add", openrouter).status_code == 302
    response = client.post(
        "/settings/providers/add",
        {
            "kind": "openai-compatible",
            "provider_id": "lab",
            "base_url": "http://localhost:8000/v1",
            "api_key": PLANTED_LOCAL_KEY,
            "model_names": "qwen-coder",
        },
    )
    assert response.status_code == 302
    assert ProviderCredential.objects.get(provider_id="openrouter").api_key == PLANTED_KEY
    pages = {}
    # The same provider again: the form is shown again with an error, the key not echoed.
    again = client.post("/settings/providers/add", openrouter)
    assert again.status_code == 400
    pages["settings form error"] = again.content

    # Create projects through the dashboard form and the API.
    response = client.post(
        "/projects/new", {"prompt": "A bakery site", "model": "openrouter/google/gemini-2.5-flash"}
    )
    assert response.status_code == 302
    project = Project.objects.get()
    _, api_token = create_api_token(alice, "tests")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {api_token}")
    created = api.post(
        "/api/projects",
        json.dumps({"prompt": "A lab site", "model": "lab/qwen-coder"}),
        content_type="application/json",
    )
    assert created.status_code == 202
    pages["api create"] = created.content

    # The real create step (scaffold the site, allocate ports, render the stack with the
    # keys); then a compose up (faked: no Docker here) whose error quotes the key, as an
    # echoed environment would.
    monkeypatch.setattr(project_jobs, "scaffold_site", scaffold_site)
    monkeypatch.setattr(project_jobs, "ensure_ports", _ports_without_docker)
    monkeypatch.setattr(runtime, "render_stack", real_render_stack)
    fake_runtime.up_error = RuntimeError(f"compose exited 1: provider refused {PLANTED_KEY}")
    for _ in range(4):
        assert worker.run_one()
        Job.objects.filter(type="docker.composeUp").update(max_attempts=1)
    assert fake_runtime.kinds() == ["up", "up"]
    assert not worker.run_one()
    for each in Project.objects.all():
        assert (runtime.agent_config_dir(each) / "opencode.json").is_file()
    project.refresh_from_db()
    assert project.status == Project.Status.ERROR
    assert Job.objects.filter(type="docker.composeUp", state="failed").count() == 2

    # Every page a user or an operator can open.
    urls = [
        "/",
        "/settings/",
        "/users/",
        "/queue/",
        "/queue/?partial=1",
        "/admin/",
        "/admin/accounts/providercredential/",
        "/admin/projects/project/",
        "/admin/queue/job/",
        "/admin/doce/event/",
        "/admin/accounts/apitoken/",
        "/api/projects",
        "/api/openapi.json",
    ]
    for each in Project.objects.all():
        base = f"/projects/{each.id}"
        urls += [f"{base}/", f"{base}/files/", f"{base}/assets/", f"/api/projects/{each.id}"]
        urls += [f"/admin/projects/project/{each.id}/change/"]
        site = each.site_dir
        for path in site.rglob("*"):
            if path.is_file() and ".git" not in path.parts and "node_modules" not in path.parts:
                urls.append(f"{base}/files/?path={path.relative_to(site)}")
    for credential in ProviderCredential.objects.all():
        urls.append(f"/admin/accounts/providercredential/{credential.pk}/change/")
    for job in Job.objects.all():
        urls += [f"/queue/jobs/{job.pk}/", f"/queue/jobs/{job.pk}/?partial=1"]
        urls.append(f"/admin/queue/job/{job.pk}/change/")
    for event in Event.objects.all()[:50]:
        urls.append(f"/admin/doce/event/{event.pk}/change/")
    for url in urls:
        response = (api if url.startswith("/api/projects") else client).get(url)
        assert response.status_code == 200, url
        pages[url] = response.content
    assert b"\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2" in pages["/settings/"]  # masked
    for where, content in pages.items():
        _assert_clean(where, content)

    # What the event streams and the queue send or show.
    for event in Event.objects.all():
        _assert_clean(f"event {event.type}", json.dumps(event.payload))
    for job in Job.objects.all():
        _assert_clean(f"job {job.type}", json.dumps(job.payload) + job.last_error)
    for line in JobLog.objects.all():
        _assert_clean("a job log", line.message + json.dumps(line.fields) + line.traceback)
    assert "[redacted]" in JobLog.objects.filter(level="error").first().traceback
    for each in Project.objects.all():
        _assert_clean("a project's status reason", each.status_reason)

    # The export of each project.
    for each in Project.objects.all():
        response = client.get(f"/projects/{each.id}/export")
        archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
        for name in archive.namelist():
            _assert_clean(f"export {name}", archive.read(name))

    # Files on disk: the key is in no file; the agent's config names the gateway only.
    for each in Project.objects.all():
        holders = [
            path.relative_to(each.root_dir).as_posix()
            for path in each.root_dir.rglob("*")
            if path.is_file()
            and not path.is_symlink()
            and (
                PLANTED_KEY.encode() in path.read_bytes()
                or PLANTED_LOCAL_KEY.encode() in path.read_bytes()
            )
        ]
        assert holders == []
        config = runtime.agent_config_dir(each) / "opencode.json"
        assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(runtime.stack_dir(each)).st_mode) == 0o700
        provider = json.loads(config.read_text())["provider"]
        for provider_id in ("openrouter", "lab"):
            options = provider[provider_id]["options"]
            assert options["apiKey"].startswith("doce_gw_")
            assert options["baseURL"].endswith(f"/gw/{provider_id}/v1")
            assert "localhost:8000" not in options["baseURL"]
        for path, data in _git_objects(each.site_dir):
            _assert_clean(f"git object {path.name}", data)

    # Every log line of all of the above.
    output = json_logs()
    assert '"event": "request"' in output  # the capture saw the requests
    _assert_clean("the process log", output)
    assert snapshot()["providers"]  # the keys are still configured (nothing was lost)
