"""`shorten`: the one cut of labels and of values an error quotes (charts, SVG, the lake's
`--memory-limit` error)."""

from hypothesis import given
from hypothesis import strategies as st

from tootlake.analysis.charts import _cut
from tootlake.text import shorten


@given(st.text(), st.integers(1, 80))
def test_a_shortened_text_is_one_line_of_at_most_its_limit(text: str, most: int) -> None:
    one_line = " ".join(text.split())
    short = shorten(text, most)
    assert len(short) <= most
    assert short.split() == short.split(" ") or not short  # no other white space, no runs
    if len(one_line) <= most:
        assert short == one_line  # whole when it fits
    else:
        assert short.endswith("…")
        assert one_line.startswith(short[:-1])  # the cut keeps the start


def test_shorten_cuts_what_does_not_fit_and_keeps_what_does() -> None:
    assert shorten(None, 5) == ""
    assert shorten("  a\n\tb  ", 5) == "a b"
    assert shorten("abcdef", 6) == "abcdef"
    assert shorten("abcdefg", 6) == "abcde…"
    assert shorten("abcd efg", 6) == "abcd…"  # (no space before the ellipsis)
    assert shorten(12345678, 4) == "123…"


def test_a_chart_label_is_shortened_and_safe_for_xml() -> None:
    assert _cut("a\x00b\x1b" + "c" * 50, 6) == "a\ufffdb\ufffdc…"
    assert _cut(None) == ""
