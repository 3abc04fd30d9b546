import pytest

from doce.markdown import clean_html, is_local_image_url, render_markdown


def test_it_renders_markdown():
    html = render_markdown("# Title\n\nSome **bold** and `code`.\n\n- one\n- two")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<li>one</li>" in html


def test_it_never_lets_scripts_or_raw_html_through():
    html = render_markdown(
        '<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n[x](javascript:alert(3))'
    )
    assert "<script" not in html and "<img" not in html  # shown as text, never as markup
    assert "&lt;script&gt;" in html
    assert 'href="javascript' not in html


def test_it_marks_links_and_highlights_code():
    html = render_markdown("[doce](https://example.org)\n\n```python\nprint(1)\n```")
    assert 'rel="noopener noreferrer nofollow"' in html
    assert 'class="hl-nb"' in html  # pygments token classes survive the cleaner


def test_it_renders_tables_and_nothing_for_blank_text():
    assert "<table>" in render_markdown("|a|b|\n|-|-|\n|1|2|")
    assert render_markdown("   ") == ""


def test_it_never_lets_a_chat_image_load_from_another_host():
    html = render_markdown(
        "![pixel](https://tracker.example/p.gif?secret=abc) "
        "![also](//tracker.example/p.gif) "
        "![logo](/static/img/logo.svg) "
        "![dot](data:image/png;base64,iVBORw0KGgo=)"
    )
    # Remote images become links (nothing is fetched until the user follows one)...
    assert '<a href="https://tracker.example/p.gif?secret=abc"' in html and ">pixel</a>" in html
    assert '<a href="//tracker.example/p.gif"' in html
    assert "<img" in html and 'src="https://' not in html and 'src="//' not in html
    # ...while images on doce itself and inline data: images still show.
    assert '<img src="/static/img/logo.svg" alt="logo">' in html
    assert '<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">' in html


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("img/a.png", True),
        ("/static/img/logo.svg", True),
        ("data:image/webp;base64,UklGR", True),
        ("https://tracker.example/p.gif", False),
        ("HTTP://tracker.example/p.gif", False),
        ("//tracker.example/p.gif", False),
        ("\\\\tracker.example\\p.gif", False),
        ("/\\tracker.example/p.gif", False),
        (" \t//tracker.example/p.gif", False),
        ("ht\ttps://tracker.example/p.gif", False),
        ("data:text/html;base64,PHNjcmlwdD4=", False),
        ("javascript:alert(1)", False),
    ],
)
def test_it_tells_local_image_urls_from_remote_ones(url, local):
    assert is_local_image_url(url) is local


def test_it_drops_remote_and_data_urls_the_sanitizer_sees_anywhere():
    # Whatever produced the HTML, the cleaner keeps images local and refuses data: links.
    html = clean_html('<img src="https://t.example/p.gif"><a href="data:text/html,hi">y</a>')
    assert "t.example" not in html and "data:" not in html


def test_it_aligns_table_cells_with_classes_not_inline_styles():
    html = render_markdown("|a|b|c|\n|:-|:-:|-:|\n|1|2|3|")
    assert '<th class="align-left">a</th>' in html
    assert '<td class="align-center">2</td>' in html and '<td class="align-right">3</td>' in html
    assert "style=" not in html
