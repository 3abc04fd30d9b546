import pytest

from projects.models import Project


@pytest.fixture
def alice_project(alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    project = Project.objects.create(owner=alice, name="Alice's bakery", prompt="a bakery site")
    site = project.site_dir
    (site / "src" / "pages").mkdir(parents=True)
    (site / "src" / "pages" / "index.astro").write_text("---\nconst t = 'Hi';\n---\n<h1>{t}</h1>\n")
    (site / "package.json").write_text('{"name": "bakery"}\n')
    (site / "public").mkdir()
    (site / "public" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    (site / "node_modules" / "astro").mkdir(parents=True)
    (site / "node_modules" / "astro" / "index.js").write_text("module.exports = 1")
    (site / "dist").mkdir()
    (site / "dist" / "index.html").write_text("<h1>built</h1>")
    (site / ".env").write_text("SECRET_TOKEN=sk-planted-secret-123456")
    (site / ".git").mkdir()
    (site / ".git" / "HEAD").write_text("ref: refs/heads/main")
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret")
    (site / "src" / "escape.txt").symlink_to(outside)
    return project
