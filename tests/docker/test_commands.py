"""The runtime's management commands when the Docker Engine is unreachable."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def dead_engine(settings, tmp_path):
    settings.DOCE_DOCKER_HOST = f"unix://{tmp_path}/dead.sock"
    # An empty cache, so prewarm can't find an earlier result and must ask the Engine.
    settings.DOCE_CACHE_DIR = tmp_path / "cache"


@pytest.mark.parametrize("command", ["build_images", "prewarm", "reconcile"])
def test_it_says_the_engine_is_unreachable(db, dead_engine, command):
    with pytest.raises(CommandError) as caught:
        call_command(command)
    assert str(caught.value).startswith("Docker Engine unreachable")
