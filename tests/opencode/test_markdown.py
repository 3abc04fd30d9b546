from doce.markdown import render_markdown


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
