"""The dashboard learns of projects created elsewhere; the setup checklist shows only while the
create chain runs."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from jobqueue.models import Job, JobState
from projects import chain, services
from projects.models import Project, PromptState
from projects.presenters import setup_checklist
from tests.projects.conftest import session_cookie, ws_communicator


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
def test_the_dashboard_adds_a_project_created_elsewhere_and_follows_it(alice, alice_provider, bob):
    async def run():
        cookie = await database_sync_to_async(session_cookie)(alice)
        dashboard = ws_communicator("/ws/projects/events/", cookie)
        assert (await dashboard.connect(timeout=5))[0]
        bob_cookie = await database_sync_to_async(session_cookie)(bob)
        bobs = ws_communicator("/ws/projects/events/", bob_cookie)
        assert (await bobs.connect(timeout=5))[0]
        await asyncio.sleep(0.2)
        # Created by the API or another tab: not among the topics the socket started with.
        project = await database_sync_to_async(services.create_project)(alice, prompt="A bakery")
        created = await dashboard.receive_json_from(timeout=5)
        await database_sync_to_async(services.rename_project)(project, "Renamed")
        seen = [created]
        while seen[-1]["type"] != "project.renamed":
            seen.append(await dashboard.receive_json_from(timeout=5))
        assert await bobs.receive_nothing(timeout=0.5)
        await dashboard.disconnect()
        await bobs.disconnect()
        return project, seen

    project, seen = async_to_sync(run)()
    assert seen[0]["type"] == "project.created"
    assert seen[0]["payload"] == {"id": project.id, "name": "A bakery", "status": "created"}
    assert seen[-1]["topic"] == f"project:{project.id}"  # its own events follow


def _job(project, type, state, **payload):
    return Job.objects.create(
        type=type,
        payload={"project_id": project.id, **payload},
        serial_key=f"project:{project.id}",
        state=state,
    )


@pytest.mark.django_db
def test_the_checklist_shows_only_while_the_create_chain_runs(alice, alice_provider):
    project = services.create_project(alice, prompt="A bakery")
    assert setup_checklist(project)["done"] is False
    for step in chain.CREATE_CHAIN[:-1]:
        Job.objects.filter(type=step).update(state=JobState.SUCCEEDED)
        if not Job.objects.filter(type=step).exists():
            _job(project, step, JobState.SUCCEEDED)
    first = _job(project, chain.AWAIT_IDLE, JobState.RUNNING, since_ms=1)
    assert setup_checklist(project)["done"] is False  # the first answer is being built
    first.state = JobState.SUCCEEDED  # handed over to the next check (still the first answer)
    first.save()
    _job(project, chain.AWAIT_IDLE, JobState.QUEUED, since_ms=1, busy_seen=True)
    assert setup_checklist(project)["done"] is False

    # A follow-up prompt (reload while it runs): prompt_completed went back to False.
    _job(project, chain.AWAIT_IDLE, JobState.RUNNING, since_ms=2)
    Project.objects.filter(pk=project.pk).update(prompt_completed=False)
    project.refresh_from_db()
    assert setup_checklist(project)["done"] is True

    # The first answer failed after the prompt reached the agent: over too.
    failed = services.create_project(alice, prompt="Another")
    for step in chain.CREATE_CHAIN[:-1]:
        _job(failed, step, JobState.SUCCEEDED)
    services.set_prompt_state(failed, PromptState.FAILED, "The model refused.")
    failed.refresh_from_db()
    assert setup_checklist(failed)["done"] is True
