"""Reading article files: every format, and every kind of bad input named with file and line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from index.models import Article, Skip
from index.readers import derive_id, read_paths
from tests.conftest import SAMPLES, write

HTML_PAGE = """<html><head><title>Assad flies to Moscow</title>
<meta property="og:site_name" content="Harbor Ledger">
<meta name="author" content="Jane Roe">
<meta property="article:published_time" content="2015-10-21T08:00:00Z">
<link rel="canonical" href="https://harbor.example.org/2015/10/21/assad"></head>
<body><nav>Home | World | Sport</nav><article><h1>Assad flies to Moscow</h1>
<p>Syrian President Bashar al-Assad flew to Moscow on Tuesday for talks with Vladimir Putin.
It was his first known trip abroad since the war began.</p>
<p>The Kremlin announced the visit on Wednesday, after he had returned to Damascus.</p>
</article><footer>Copyright Harbor Ledger</footer></body></html>"""

RSS_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Meridian Wire</title><link>https://meridian.example.net</link>
<item><title>Putin says Assad open to talks</title>
<link>https://meridian.example.net/2015/10/23/putin-assad</link>
<pubDate>Fri, 23 Oct 2015 10:00:00 GMT</pubDate>
<description>&lt;p&gt;Putin spoke on Thursday.&lt;/p&gt;&lt;p&gt;He met Assad on Tuesday.&lt;/p&gt;</description>
</item>
<item><title>Second story</title><link>https://meridian.example.net/b</link>
<description>Plain text body of the second story.</description></item>
</channel></rss>"""

ATOM_FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Northgate Post</title>
<entry><title>Lavrov backs FSA air cover</title><id>tag:northgate,2015:lavrov</id>
<link href="https://northgate.example.com/lavrov"/><updated>2015-10-25T09:00:00Z</updated>
<author><name>Ann Lee</name></author>
<content type="html">&lt;p&gt;Lavrov spoke on Saturday.&lt;/p&gt;</content></entry></feed>"""


def read_one(path: Path) -> Article | Skip:
    items = list(read_paths([path]))
    assert len(items) == 1, items
    return items[0]


def test_text_file_first_line_is_the_headline(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "Headline here\n\nFirst sentence. Second one.\n")
    article = read_one(path)
    assert isinstance(article, Article)
    assert article.title == "Headline here"
    assert article.text == "First sentence. Second one."
    assert article.published is None and article.outlet is None
    assert article.source == str(path.resolve())


def test_markdown_front_matter_gives_metadata(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.md",
        "---\ntitle: Front title\noutlet: Harbor Ledger\npublished: 2015-10-21\n"
        "url: https://harbor.example.org/x\nauthors: [Jane Roe]\nid: my-id\n---\n# Body starts\nText.\n",
    )
    article = read_one(path)
    assert isinstance(article, Article)
    assert (article.id, article.title, article.outlet) == ("my-id", "Front title", "Harbor Ledger")
    assert article.published == date(2015, 10, 21)
    assert article.authors == ["Jane Roe"]
    assert article.text == "# Body starts\nText."


def test_html_main_text_and_metadata(tmp_path: Path) -> None:
    article = read_one(write(tmp_path / "page.html", HTML_PAGE))
    assert isinstance(article, Article)
    assert article.title == "Assad flies to Moscow"
    assert article.outlet == "Harbor Ledger"
    assert article.published == date(2015, 10, 21)
    assert article.url == "https://harbor.example.org/2015/10/21/assad"
    assert article.authors == ["Jane Roe"]
    assert "flew to Moscow on Tuesday" in article.text
    assert "Home | World" not in article.text and "Copyright" not in article.text


def test_rss_and_atom_feeds_give_one_article_per_entry(tmp_path: Path) -> None:
    items = list(read_paths([write(tmp_path / "feed.rss", RSS_FEED)]))
    assert [type(i) for i in items] == [Article, Article]
    first = items[0]
    assert isinstance(first, Article)
    assert first.outlet == "Meridian Wire" and first.published == date(2015, 10, 23)
    assert first.text == "Putin spoke on Thursday.\n\nHe met Assad on Tuesday."
    atom = read_one(write(tmp_path / "feed.atom", ATOM_FEED))
    assert isinstance(atom, Article)
    assert (atom.id, atom.authors, atom.published) == (
        "tag:northgate,2015:lavrov", ["Ann Lee"], date(2015, 10, 25)
    )


def test_jsonl_corpus_format(tmp_path: Path) -> None:
    record = {"id": "x-1", "title": "T", "text": "Body.", "url": "https://www.cnn.com/a",
              "outlet": None, "published": "2022-06-12", "authors": ["A"]}
    article = read_one(write(tmp_path / "c.jsonl", json.dumps(record) + "\n"))
    assert isinstance(article, Article)
    assert article.outlet == "cnn.com", "outlet falls back to the URL host without www."
    assert article.published == date(2022, 6, 12)


def test_json_file_holds_one_record_or_a_list(tmp_path: Path) -> None:
    records = [{"title": "A", "text": "One."}, {"title": "B", "text": "Two."}]
    items = list(read_paths([write(tmp_path / "l.json", json.dumps(records))]))
    assert [i.title for i in items if isinstance(i, Article)] == ["A", "B"]
    single = read_one(write(tmp_path / "s.json", json.dumps(records[0])))
    assert isinstance(single, Article) and single.title == "A"


def test_folders_are_read_recursively_and_other_files_skipped_benignly(tmp_path: Path) -> None:
    write(tmp_path / "x" / "a.txt", "A\nText a.")
    write(tmp_path / "x" / "deep" / "b.md", "B\nText b.")
    write(tmp_path / "x" / "notes.pdf", b"%PDF-1.4")
    write(tmp_path / "x" / ".hidden" / "c.txt", "C\nHidden.")
    items = list(read_paths([tmp_path / "x"]))
    assert sorted(i.title for i in items if isinstance(i, Article)) == ["A", "B"]
    skips = [i for i in items if isinstance(i, Skip)]
    assert len(skips) == 1 and skips[0].source.endswith("notes.pdf") and not skips[0].error


def test_shipped_samples_all_read_cleanly() -> None:
    items = list(read_paths([SAMPLES]))
    assert items and all(isinstance(i, Article) for i in items)
    assert all(i.published and i.outlet and i.url for i in items if isinstance(i, Article))
    assert any("Moscow" in i.text and i.published == date(2015, 10, 21) for i in items
               if isinstance(i, Article))


@pytest.mark.parametrize(
    ("name", "content", "where", "reason"),
    [
        ("empty.txt", "", "empty.txt", "file is empty"),
        ("blank.md", "  \n\n ", "blank.md", "file is empty"),
        ("binary.txt", b"GIF89a\x00\x01\x02\x00", "binary.txt", "binary"),
        ("latin1.txt", "Caf\xe9 news\nBody".encode("latin-1"), "latin1.txt", "not valid UTF-8"),
        ("bad.jsonl", '{"title": "ok", "text": "Fine."}\n{"title": oops}\n', "bad.jsonl:2",
         "malformed JSON"),
        ("notext.jsonl", '{"title": "no body"}\n', "notext.jsonl:1", "no text"),
        ("emptytext.jsonl", '{"title": "t", "text": "   "}\n', "emptytext.jsonl:1", "no text"),
        ("baddate.jsonl", '{"text": "x", "published": "the day after"}\n', "baddate.jsonl:1",
         "field 'published'"),
        ("badauthors.jsonl", '{"text": "x", "authors": 5}\n', "badauthors.jsonl:1",
         "field 'authors'"),
        ("array.jsonl", "[1, 2]\n", "array.jsonl:1", "expected a JSON object"),
        ("broken.json", '{"text": "x",', "broken.json:1", "malformed JSON"),
        ("nofeed.xml", "<note><to>x</to></note>", "nofeed.xml", "not an RSS or Atom feed"),
        ("empty.html", "<html><body></body></html>", "empty.html", "no article text"),
        ("image.png", b"\x89PNG\r\n", "image.png", "unsupported file type"),
    ],
)
def test_bad_input_is_named_with_its_reason(
    tmp_path: Path, name: str, content: str | bytes, where: str, reason: str
) -> None:
    path = write(tmp_path / name, content)
    skips = [i for i in read_paths([path]) if isinstance(i, Skip)]
    assert len(skips) == 1
    assert skips[0].error
    assert skips[0].source.endswith(where)
    assert reason in skips[0].reason


def test_a_bad_line_does_not_lose_the_good_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "mix.jsonl", '{"text": "Good one."}\nnot json\n{"text": "Good two."}\n')
    items = list(read_paths([path]))
    assert [type(i).__name__ for i in items] == ["Article", "Skip", "Article"]


def test_missing_path_is_reported_as_typed() -> None:
    (skip,) = read_paths(["no/such/dir"])
    assert isinstance(skip, Skip) and skip.source == "no/such/dir" and "no such file" in skip.reason


@pytest.mark.parametrize(
    ("url", "same_as"),
    [
        ("https://www.example.com/a/", "http://example.com/a"),
        ("https://EXAMPLE.com/a", "https://example.com/a"),
    ],
)
def test_ids_derive_from_normalised_url(url: str, same_as: str) -> None:
    assert derive_id(url, "t", "x") == derive_id(same_as, "other", "y")


def test_ids_without_url_derive_from_content() -> None:
    assert derive_id(None, "t", "x") == derive_id(None, "t", "x") != derive_id(None, "t", "y")
