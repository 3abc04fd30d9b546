"""The warm pool's accounting (`projects.pool`), without Docker: claim, refill, limits,
replacement when the template or images change, and concurrent claims. The real stacks are
in tests/integration/test_warm_pool.py."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from doce.docker.failures import StackError
from doce.docker.stacks import ContainerState, StackStatus
from jobqueue.models import Job, JobState
from projects import chain, pool, ports, services
from projects.models import PoolEntry, Project

pytestmark = pytest.mark.django_db

FINGERPRINT = "f" * 32


@pytest.fixture
def pool_of_one(settings, tmp_path):
    settings.DOCE_WARM_POOL_SIZE = 1
    settings.DATA_DIR = tmp_path
    return settings


def ready_entry(port: int = 42100, **fields) -> PoolEntry:
    return PoolEntry.objects.create(
        state=fields.pop("state", PoolEntry.State.READY),
        fingerprint=fields.pop("fingerprint", FINGERPRINT),
        preview_port=port,
        agent_port=port + 1,
        agent_password="pool-agent-password",
        **fields,
    )


def jobs(type: str):
    return Job.objects.filter(type=type)


def running_stacks(*entries: PoolEntry) -> dict[str, StackStatus]:
    return {
        entry.stack_name: StackStatus(
            entry.stack_name,
            {
                service: ContainerState(
                    service=service, id=f"{entry.id}-{service}", status="running"
                )
                for service in ("preview", "agent")
            },
        )
        for entry in entries
    }


@pytest.fixture
def engine(monkeypatch):
    """What `pool.maintain` reads from the Engine: the fingerprint and the stacks."""

    class Engine:
        fingerprint = FINGERPRINT
        stacks: dict[str, StackStatus] = {}

    monkeypatch.setattr(pool, "current_fingerprint", lambda: Engine.fingerprint)
    monkeypatch.setattr(pool, "list_stacks", lambda: Engine.stacks)
    return Engine


def test_it_names_a_new_projects_stack_and_folder_after_its_id(alice):
    project = Project.objects.create(owner=alice, name="Bakery", prompt="p")
    assert project.stack_name == project.id
    assert project.directory == f"projects/{project.id}"
    assert project.root_dir.name == project.id
    entry = PoolEntry.objects.create(fingerprint=FINGERPRINT)
    assert entry.stack_name == entry.id and entry.directory == f"projects/{entry.id}"


def test_it_claims_nothing_and_queues_nothing_without_a_pool(alice, alice_provider, settings):
    settings.DOCE_WARM_POOL_SIZE = 0
    ready_entry()
    project = services.create_project(alice, prompt="A bakery")
    assert project.stack_name == project.id
    assert PoolEntry.objects.count() == 1
    assert not jobs(pool.FILL).exists()
    assert jobs(chain.CREATE).count() == 1


def test_it_gives_a_create_the_ready_stack_and_queues_one_refill(
    alice, alice_provider, pool_of_one
):
    entry = ready_entry()
    project = services.create_project(alice, prompt="A bakery")
    project.refresh_from_db()
    # The project adopted the warm stack: its name, folder, ports and agent password.
    assert project.stack_name == entry.id != project.id
    assert project.directory == entry.directory
    assert (project.preview_port, project.agent_port) == (42100, 42101)
    assert project.agent_password == "pool-agent-password"
    assert not PoolEntry.objects.exists()
    # Viewable at once (its preview is routed); the warm chain follows, not the cold one.
    assert project.status == Project.Status.STARTING
    adopt = jobs(chain.ADOPT).get()
    assert adopt.payload == {"project_id": project.id, "fingerprint": FINGERPRINT}
    assert not jobs(chain.CREATE).exists()
    # One refill, whatever the number of claims asking for it (its dedupe key).
    services.create_project(alice, prompt="A florist")
    assert jobs(pool.FILL).count() == 1
    assert jobs(pool.FILL).get().serial_key == "pool"


def test_it_starts_cold_while_the_pool_is_only_starting(alice, alice_provider, pool_of_one):
    ready_entry(state=PoolEntry.State.STARTING)
    project = services.create_project(alice, prompt="A bakery")
    assert project.stack_name == project.id
    assert project.status == Project.Status.CREATED
    assert jobs(chain.CREATE).count() == 1
    assert PoolEntry.objects.get().state == PoolEntry.State.STARTING


def test_it_claims_each_entry_once(alice, alice_provider, pool_of_one):
    entry = ready_entry()
    first = services.create_project(alice, prompt="A bakery")
    second = services.create_project(alice, prompt="A florist")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.stack_name == entry.id
    assert second.stack_name == second.id  # cold
    assert jobs(chain.ADOPT).count() == 1 and jobs(chain.CREATE).count() == 1


def test_it_loses_a_claim_to_whoever_changed_the_entry_first(alice, pool_of_one, monkeypatch):
    """The compare-and-set: the candidate was read as `ready`, but another create (or the
    pool's maintenance) moved it before this claim's update."""
    entry = ready_entry()
    project = Project.objects.create(owner=alice, name="Bakery", prompt="p")
    real_filter = PoolEntry.objects.filter

    def candidates_then_race(*args, **kwargs):
        rows = real_filter(*args, **kwargs)
        if kwargs == {"state": PoolEntry.State.READY}:
            listed = list(rows)
            real_filter(pk=entry.pk).update(state=PoolEntry.State.DISCARDING)
            return _Listed(listed)
        return rows

    monkeypatch.setattr(PoolEntry.objects, "filter", candidates_then_race)
    assert pool.claim(project) is None
    project.refresh_from_db()
    assert project.stack_name == project.id
    assert PoolEntry.objects.get().state == PoolEntry.State.DISCARDING


class _Listed(list):
    def order_by(self, *fields):
        return self


def test_it_counts_pool_entries_toward_the_port_range(alice, settings):
    settings.DOCE_PORT_RANGE = (42200, 42201)  # one pair
    ready_entry(port=42200)
    project = Project.objects.create(owner=alice, name="Bakery", prompt="p")
    with pytest.raises(StackError) as raised:
        ports.allocate_ports(project)
    assert raised.value.failure == ports.PORTS_EXHAUSTED


def test_it_replaces_entries_of_an_old_template_or_image(engine, pool_of_one):
    old = ready_entry(fingerprint="0" * 32)
    engine.stacks = running_stacks(old)
    assert pool.maintain()["stale"] == 1
    old.refresh_from_db()
    assert old.state == PoolEntry.State.DISCARDING
    assert jobs(pool.DISCARD).get().payload == {"entry_id": old.id}
    # The pool is short now: a refill (of the current template and images) is queued.
    assert jobs(pool.FILL).count() == 1
    # Discarding a stack is a job; running maintain again queues it no second time.
    pool.maintain()
    assert jobs(pool.DISCARD).count() == 1


def test_it_keeps_a_current_running_entry_and_asks_for_nothing(engine, pool_of_one):
    entry = ready_entry()
    engine.stacks = running_stacks(entry)
    assert sum(pool.maintain().values()) == 0
    assert PoolEntry.objects.get().state == PoolEntry.State.READY
    assert not Job.objects.exists()


def test_it_discards_an_entry_whose_containers_vanished(engine, pool_of_one):
    ready_entry()
    engine.stacks = {}
    assert pool.maintain()["gone"] == 1


def test_it_discards_what_a_crashed_refill_left_half_built(engine, pool_of_one):
    crashed = Job.objects.create(type=pool.FILL, state=JobState.FAILED, payload={})
    building = Job.objects.create(type=pool.FILL, state=JobState.RUNNING, payload={})
    abandoned = ready_entry(port=42100, state=PoolEntry.State.STARTING, job_id=crashed.pk)
    ready_entry(port=42102, state=PoolEntry.State.STARTING, job_id=building.pk)
    settings_size = 2
    pool_of_one.DOCE_WARM_POOL_SIZE = settings_size
    done = pool.maintain()
    assert done["abandoned"] == 1
    abandoned.refresh_from_db()
    assert abandoned.state == PoolEntry.State.DISCARDING


def test_it_shrinks_to_its_size_newest_first(engine, pool_of_one):
    older = ready_entry(port=42100)
    newer = ready_entry(port=42102)
    engine.stacks = running_stacks(older, newer)
    assert pool.maintain()["excess"] == 1
    assert PoolEntry.objects.get(pk=newer.pk).state == PoolEntry.State.DISCARDING
    assert PoolEntry.objects.get(pk=older.pk).state == PoolEntry.State.READY


def test_it_leaves_the_engine_alone_without_a_pool(settings, monkeypatch):
    settings.DOCE_WARM_POOL_SIZE = 0

    def engine_call():
        raise AssertionError("no Engine call without a pool")

    monkeypatch.setattr(pool, "current_fingerprint", engine_call)
    assert pool.maintain() == {}


def test_it_refills_nothing_when_the_pool_is_full(pool_of_one, worker):
    ready_entry()
    pool.request_refill()
    assert worker.run_one()
    assert jobs(pool.FILL).get().state == JobState.SUCCEEDED
    assert PoolEntry.objects.count() == 1


def test_it_discards_an_entry_through_the_job(pool_of_one, worker, monkeypatch):
    entry = ready_entry()
    downs = []
    monkeypatch.setattr(pool.runtime, "stack_down", lambda e, delete: downs.append(e.id))
    entry.root_dir.mkdir(parents=True)
    assert pool.discard_entries([entry], "test") == 1
    assert worker.run_one()
    assert downs == [entry.id]
    assert not entry.root_dir.exists()
    assert not PoolEntry.objects.exists()


def test_it_fills_the_project_stack_fields_of_existing_rows(transactional_db):
    from django.db.migrations.executor import MigrationExecutor

    before = [("projects", "0007_project_name_from_user")]
    after = [("projects", "0008_stack_fields_pool_entry")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        bob = old.get_model("auth", "User").objects.create(username="bob")
        old.get_model("projects", "Project").objects.create(
            id="0123456789abcdef", owner=bob, name="Old", prompt="p"
        )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        row = new.get_model("projects", "Project").objects.get(pk="0123456789abcdef")
        assert row.stack_name == "0123456789abcdef"
        assert row.directory == "projects/0123456789abcdef"
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_concurrent_creates_claim_the_entry(alice, alice_provider, settings):
    """Two creates at the same moment, each in its own connection and transaction: one
    claims the one ready entry, the other starts cold, both are created."""
    settings.DOCE_WARM_POOL_SIZE = 1
    entry = ready_entry()
    barrier = threading.Barrier(2)
    made: list[Project] = []
    errors: list[BaseException] = []

    def create(prompt: str) -> None:
        try:
            barrier.wait(timeout=10)
            made.append(services.create_project(alice, prompt=prompt))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(p,)) for p in ("A bakery", "A florist")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    stacks = sorted(Project.objects.values_list("stack_name", "id"))
    warm = [pair for pair in stacks if pair[0] != pair[1]]
    assert len(stacks) == 2 and len(warm) == 1 and warm[0][0] == entry.id
    assert jobs(chain.ADOPT).count() == 1 and jobs(chain.CREATE).count() == 1


def test_it_shows_the_pool_to_staff_in_the_admin_and_the_queue_monitor(
    client, alice, bob, pool_of_one
):
    entry = ready_entry()
    pool.request_refill()
    client.force_login(alice)
    response = client.get("/admin/projects/poolentry/")
    assert response.status_code == 200
    assert entry.id in response.content.decode()
    assert pool.FILL in client.get("/queue/").content.decode()
    # A member sees neither: the pool is nobody's project.
    client.force_login(bob)
    assert client.get("/admin/projects/poolentry/").status_code == 302
    assert pool.FILL not in client.get("/queue/").content.decode()


def test_it_discards_an_entry_deleted_in_the_admin(alice_client, pool_of_one):
    entry = ready_entry()
    response = alice_client.post(f"/admin/projects/poolentry/{entry.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.state == PoolEntry.State.DISCARDING
    assert jobs(pool.DISCARD).get().payload == {"entry_id": entry.id}


def test_it_removes_what_a_failed_warm_up_built(pool_of_one, worker, monkeypatch):
    from doce.docker.failures import FailureKind, StackFailure

    removed = []
    monkeypatch.setattr(pool, "current_fingerprint", lambda: FINGERPRINT)
    monkeypatch.setattr(pool, "scaffold_site", lambda entry: entry.site_dir.mkdir(parents=True))
    monkeypatch.setattr(pool.ports, "allocate_ports", lambda entry: (42100, 42101))
    monkeypatch.setattr(pool.runtime, "render_stack", lambda entry: None)
    monkeypatch.setattr(pool.runtime, "stack_down", lambda e, delete: removed.append(e.id))

    def up_fails(entry):
        raise StackError(StackFailure(kind=FailureKind.OTHER, message="no", retryable=False))

    monkeypatch.setattr(pool.runtime, "stack_up", up_fails)
    pool.request_refill()
    assert worker.run_one()
    assert jobs(pool.FILL).get().state == JobState.FAILED
    assert len(removed) == 1  # its stack was taken down,
    assert not PoolEntry.objects.exists()  # its row deleted
    assert not any(pool_of_one.DATA_DIR.glob("projects/*"))  # and its files removed
