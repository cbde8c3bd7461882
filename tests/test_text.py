from tootlake.text import count_words, has_opt_out_tag, html_to_text

from .conftest import real_status


def test_paragraphs_are_joined_by_a_blank_line_and_br_is_a_newline():
    assert html_to_text("<p>one<br>two<br />three</p><p>four</p>") == "one\ntwo\nthree\n\nfour"


def test_entities_are_decoded_and_tags_removed():
    assert html_to_text("<p>a &amp; b &lt;script&gt; &#39;c&#39;</p>") == "a & b <script> 'c'"


def test_invisible_and_ellipsis_link_spans_keep_the_whole_url():
    html = (
        '<p><a href="https://example.org/a/long/path"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.org/a/lo</span>'
        '<span class="invisible">ng/path</span></a></p>'
    )
    assert html_to_text(html) == "https://example.org/a/long/path"


def test_real_status_with_links_and_line_breaks():
    status = real_status("malformed.json", 17)
    text = html_to_text(status["content"])
    assert text.startswith(
        "According to:\nhttps://nationalzoo.si.edu/animals/news/how-fast-ostrich-and-more-fun-facts\n"
        '"Ostriches can’t fly'
    )
    assert text.endswith(
        "Go good luck in your chase Taber. \n\n#alberta #ostrich #FunFact #fast #ostriches"
    )


def test_plain_and_empty_content():
    assert html_to_text("") == ""
    assert html_to_text(None) == ""
    assert html_to_text("no markup") == "no markup"


def test_words_are_runs_of_non_space():
    assert count_words("one  two\nthree\n\n") == 3
    assert count_words("") == 0


def test_opt_out_tags_in_a_bio():
    assert has_opt_out_tag('<p>Hi! <a href="x" class="mention hashtag">#<span>NoBot</span></a></p>')
    assert has_opt_out_tag("<p>#nosearch please</p>")
    assert has_opt_out_tag("#noindex")
    assert has_opt_out_tag("<p>#NoBots here</p>")
    assert has_opt_out_tag('<p><a class="mention hashtag">#<span>noarchive</span></a></p>')
    assert not has_opt_out_tag("<p>#nobotsplease is one word; #notabot; #noarchives</p>")
    # markup, entities, compatibility forms and invisible characters do not hide a tag
    for hidden in (
        "#<span>No</span><span>Bot</span>", "#no<b>index</b>", "#n<i></i>oindex", "&#35;nobot",
        "&#x23;noindex", "#n&#111;bot", "#no&shy;archive", "#no\u200bbot", "\uff03nobot",
        "#\uff4e\uff4f\uff42\uff4f\uff54", "#no<!-- > -->bot", '#no<a title=">">bot',
    ):  # fmt: skip
        assert has_opt_out_tag(f"<p>{hidden}</p>"), hidden
    assert not has_opt_out_tag('<p>#<span>nature</span> <a href="#nobot">link</a></p>')
    assert not has_opt_out_tag("")
