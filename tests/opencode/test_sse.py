from doce.opencode.sse import SSEEvent, SSEParser


def feed_all(parser: SSEParser, pieces: list[str]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


def test_it_parses_events_split_anywhere():
    stream = 'data: {"a": 1}\n\nevent: x\ndata: two\ndata: lines\nid: 7\n\n'
    whole = SSEParser().feed(stream)
    for size in (1, 2, 3, 5, 7):
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert feed_all(SSEParser(), pieces) == whole
    assert whole == [
        SSEEvent(data='{"a": 1}'),
        SSEEvent(data="two\nlines", event="x", id="7"),
    ]


def test_it_accepts_crlf_and_cr_line_ends_even_split_between_feeds():
    assert feed_all(SSEParser(), ["data: a\r", "\n\r", "\ndata: b\r\r"]) == [
        SSEEvent(data="a"),
        SSEEvent(data="b"),
    ]


def test_it_counts_comments_and_skips_empty_events():
    parser = SSEParser()
    assert parser.feed(": keep-alive\n\nevent: ping\n\n") == []
    assert parser.comments == 1


def test_it_strips_one_space_and_a_leading_bom():
    parser = SSEParser()
    assert parser.feed("\ufeffdata:  two spaces\ndata:none\n\n") == [
        SSEEvent(data=" two spaces\nnone")
    ]


def test_it_keeps_retry_and_ignores_unknown_fields():
    assert SSEParser().feed("retry: 3000\nfoo: bar\ndata: x\n\n") == [
        SSEEvent(data="x", retry=3000)
    ]


def test_it_holds_an_unfinished_event_until_its_blank_line():
    parser = SSEParser()
    assert parser.feed("data: partial") == []
    assert parser.feed("\n") == []
    assert parser.feed("\n") == [SSEEvent(data="partial")]
