import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_does_not_shadow_the_standard_queue_module():
    import queue

    assert hasattr(queue, "LifoQueue")
    assert "site-packages" not in queue.__file__ and "jobqueue" not in queue.__file__


def test_it_does_not_shadow_queue_when_run_like_manage_py():
    # manage.py puts the project root first on sys.path; a top-level queue/ would win there.
    code = "import queue, urllib3, docker; print(queue.LifoQueue.__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LifoQueue"
    assert not (ROOT / "queue").exists()
