"""Asking questions: retrieval with filters, extractive answers, and the LLM path end to end.

Chroma and the embedding model are real; the LLM is an OpenAI-protocol server on loopback.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from assistant.answer import Assistant
from assistant.errors import NothingIndexed
from assistant.models import CANNOT_ANSWER
from assistant.retrieve import Filters, retrieve
from assistant.settings import Settings, get_settings
from index import ingest, open_store
from index.embeddings import Embedder
from tests.conftest import LIVE_ENV, SEED_ARTICLE
from tests.fake_openai import FakeOpenAI, Reply

ASSAD_Q = "When did Assad visit Moscow?"


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    if not SEED_ARTICLE.exists():
        pytest.skip("../shared/data/seed-article.txt is absent")
    settings = get_settings(data_dir=tmp_path_factory.mktemp("seed") / "data")
    ingest([SEED_ARTICLE], config=settings, embedder=embedder)
    return settings


def check_citations_are_verbatim(answer, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    store = open_store(settings)
    for c in answer.citations:
        assert store.get_article(c.article_id).text[c.start : c.end] == c.quote


# --- the smoke test the product was conceived around ----------------------------------------


def test_seed_question_answers_extractively_with_both_sentences(
    seed_index: Settings, embedder: Embedder
) -> None:
    answer = Assistant(seed_index, embedder=embedder).ask(ASSAD_Q)
    assert answer.mode == "extractive" and not answer.refused
    assert "Extractive answer" in (answer.notice or "")
    quotes = [c.quote for c in answer.citations]
    assert "Putin made the remarks two days after Assad made a surprise visit to Moscow." in quotes
    assert any(q.startswith("On October 22, Russian President Vladimir Putin said") for q in quotes)
    assert all(s.supported for s in answer.sentences)
    check_citations_are_verbatim(answer, seed_index)
    assert answer.model_dump_json()  # JSON-serialisable


# --- retrieval ------------------------------------------------------------------------------


def test_hybrid_retrieval_finds_the_assad_story_first(sample_index: Settings, embedder: Embedder) -> None:
    for mode in ("hybrid", "dense", "bm25"):
        hits = retrieve(ASSAD_Q, mode=mode, settings=sample_index, embedder=embedder).hits
        assert hits and ("assad" in hits[0].article_id or "putin" in hits[0].article_id), mode


def test_filters_apply_inside_the_stores(sample_index: Settings, embedder: Embedder) -> None:
    store = open_store(sample_index)
    published = {a.id: a.published for a in store.list_articles()}
    outlets = {a.id: a.outlet for a in store.list_articles()}
    cases = [
        Filters(as_of=date(2015, 10, 22)),
        Filters(since=date(2021, 1, 1), until=date(2021, 12, 31)),
        Filters(outlets=["Northgate Post"]),
    ]
    for filters in cases:
        for mode in ("dense", "bm25"):
            hits = retrieve("Moscow summit ship telescope", filters, mode=mode, k=50,
                            settings=sample_index, embedder=embedder).hits
            assert hits, (filters, mode)
            for h in hits:
                day, outlet = published[h.article_id], outlets[h.article_id]
                assert not filters.latest or (day and day <= filters.latest)
                assert not filters.since or (day and day >= filters.since)
                assert not filters.outlets or outlet in filters.outlets


def test_as_of_hides_later_articles_from_the_answer(sample_index: Settings, embedder: Embedder) -> None:
    assistant = Assistant(sample_index, embedder=embedder)
    later = assistant.ask("Who did Lavrov say Russia was ready to support from the air?")
    assert not later.refused and "Free Syrian Army" in later.text
    earlier = assistant.ask("Who did Lavrov say Russia was ready to support from the air?",
                            as_of=date(2015, 10, 22))
    assert all(s.published and s.published <= date(2015, 10, 22) for s in earlier.sources)
    assert "Free Syrian Army" not in earlier.text


def test_unanswerable_questions_are_refused(sample_index: Settings, embedder: Embedder) -> None:
    assistant = Assistant(sample_index, embedder=embedder)
    for question in ("Who won the 2018 football World Cup final?", "What is the capital of Australia?"):
        answer = assistant.ask(question)
        assert answer.refused and answer.text == CANNOT_ANSWER and not answer.citations


def test_empty_index_says_how_to_fix_it(settings: Settings, embedder: Embedder) -> None:
    with pytest.raises(NothingIndexed, match="no articles indexed yet") as info:
        Assistant(settings, embedder=embedder).ask(ASSAD_Q)
    assert "newsdesk ingest" in (info.value.hint or "")


# --- the LLM path, against an OpenAI-protocol server on loopback ------------------------------


def llm_settings(base: Settings, fake: FakeOpenAI, **extra: object) -> Settings:
    options: dict[str, object] = {"llm_max_retries": 1, "llm_timeout": 2, **extra}
    return get_settings(data_dir=base.index.data_dir, llm="openai-compatible:test-model",
                        openai_base_url=fake.base_url, **options)


def cite_source_saying(phrase: str, claim: str):  # type: ignore[no-untyped-def]
    """A scripted model that reads the prompt and cites the source containing ``phrase``."""
    def reply(messages: list[dict[str, str]]) -> str:
        blocks = re.split(r"\n(?=\[\d+\] \")", messages[-1]["content"])
        for block in blocks:
            if phrase in block:
                number = re.search(r"\[(\d+)\]", block).group(1)  # type: ignore[union-attr]
                return f"{claim} [{number}]."
        return CANNOT_ANSWER
    return reply


def test_llm_answer_is_cited_and_checked(sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(cite_source_saying(
        "surprise visit to Moscow", "Assad made a surprise visit to Moscow on October 20")))
    answer = Assistant(llm_settings(sample_index, fake_llm), embedder=embedder).ask(ASSAD_Q)
    assert answer.mode == "llm" and answer.model == "openai-compatible:test-model"
    assert not answer.refused and answer.notice is None and answer.fallback is None
    (citation,) = answer.citations
    assert citation.supported and "Moscow" in citation.quote
    check_citations_are_verbatim(answer, sample_index)
    assert answer.usage["prompt_tokens"] == 100
    request = fake_llm.requests[0]["body"]
    system, user = request["messages"][0]["content"], request["messages"][1]["content"]
    assert CANNOT_ANSWER in system and "[1] \"" in user and "published 2015-10-2" in user
    assert request["stream"] is True and request["model"] == "test-model"


def test_hallucinated_citations_turn_into_a_refusal(sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply("Assad visited Moscow in 1999 [42]. He liked it [43]."))
    answer = Assistant(llm_settings(sample_index, fake_llm), embedder=embedder).ask(ASSAD_Q)
    assert answer.refused and answer.text == CANNOT_ANSWER
    assert any("[42]" in w for w in answer.warnings)


def test_unsupported_llm_claims_are_removed(sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(Reply(cite_source_saying(
        "surprise visit to Moscow", "Assad made a surprise visit to Moscow [1]. The weather in "
        "Damascus was sunny and warm that whole week")))
    answer = Assistant(llm_settings(sample_index, fake_llm), embedder=embedder).ask(ASSAD_Q)
    assert "weather" not in answer.text and not answer.unsupported
    (weather,) = answer.dropped
    assert weather.kind == "unsupported" and weather.text.startswith("The weather in Damascus")


def test_streaming_yields_deltas_then_the_answer(sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI) -> None:
    claim = "Assad made a surprise visit to Moscow on October 20"
    fake_llm.script(Reply(cite_source_saying("surprise visit to Moscow", claim), pieces=6))
    events = list(Assistant(llm_settings(sample_index, fake_llm), embedder=embedder).stream(ASSAD_Q))
    deltas = [e.text for e in events if e.type == "delta"]
    assert len(deltas) >= 5
    assert events[-1].type == "answer" and events[-1].answer is not None
    assert "".join(d or "" for d in deltas).strip() == events[-1].answer.text
    assert events[-1].answer.text.startswith(claim)


@pytest.mark.parametrize(
    ("replies", "says"),
    [
        ([Reply(status=429), Reply(status=429)], "429"),
        ([Reply(status=500), Reply(status=503)], "HTTP 50"),
        ([Reply(status=401)], "401"),
        ([Reply("slow", delay=3), Reply("slow", delay=3)], "timed out"),
    ],
)
def test_llm_failures_fall_back_to_an_extractive_answer(
    sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI, replies: list[Reply], says: str
) -> None:
    fake_llm.script(*replies)
    settings = llm_settings(sample_index, fake_llm, llm_timeout=1)
    answer = Assistant(settings, embedder=embedder).ask(ASSAD_Q)
    assert answer.mode == "extractive" and not answer.refused
    assert answer.fallback and says in answer.fallback
    assert any(says in w for w in answer.warnings), answer.warnings
    assert says in (answer.notice or "")
    assert "Moscow" in answer.text and answer.citations


def test_unreachable_server_falls_back(sample_index: Settings, embedder: Embedder) -> None:
    settings = get_settings(data_dir=sample_index.index.data_dir, llm="openai-compatible:m",
                            openai_base_url="http://127.0.0.1:9/v1", llm_max_retries=0)
    answer = Assistant(settings, embedder=embedder).ask(ASSAD_Q)
    assert answer.mode == "extractive" and any("cannot reach" in w for w in answer.warnings)
    assert answer.fallback and "cannot reach" in answer.fallback


def test_a_failure_mid_stream_resets_the_text_and_the_answer_says_why(
    sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI
) -> None:
    settings = llm_settings(sample_index, fake_llm, llm_max_retries=0)
    fake_llm.script(Reply("Assad went to Moscow on a surprise visit [1].", pieces=4, error_after=2))
    events = list(Assistant(settings, embedder=embedder).stream(ASSAD_Q))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["delta", "delta", "reset"] and kinds[-1] == "answer"
    answer = events[-1].answer
    assert answer is not None and answer.mode == "extractive" and answer.model == "extractive"
    assert answer.fallback and "scripted failure mid-stream" in answer.fallback
    after_reset = "".join(e.text or "" for e in events[3:-1])
    assert after_reset.strip() == answer.text and "Moscow" in answer.text


def test_an_extractive_setup_has_no_fallback_and_no_chat_model(
    sample_index: Settings, embedder: Embedder
) -> None:
    assistant = Assistant(sample_index, embedder=embedder)
    assert assistant.chat_model is None and assistant.writer.mode == "extractive"
    answer = assistant.ask(ASSAD_Q)
    assert answer.fallback is None and answer.searched is None and answer.usage == {}


@pytest.mark.live
@pytest.mark.skipif(not (LIVE_ENV["OPENAI_API_KEY"] or LIVE_ENV["OPENAI_BASE_URL"]),
                    reason="no OPENAI_API_KEY or OPENAI_BASE_URL set")
def test_live_endpoint_answers_with_citations(sample_index: Settings, embedder: Embedder) -> None:
    settings = get_settings(
        data_dir=sample_index.index.data_dir, openai_api_key=LIVE_ENV["OPENAI_API_KEY"],
        openai_base_url=LIVE_ENV["OPENAI_BASE_URL"], llm_model=LIVE_ENV["NEWSDESK_LLM_MODEL"],
    )
    answer = Assistant(settings, embedder=embedder).ask(ASSAD_Q)
    assert answer.mode == "llm" and not answer.refused and answer.citations
    check_citations_are_verbatim(answer, sample_index)


def test_extractive_answers_prefer_the_better_ranked_article_among_relevant_sentences(
    embedder: Embedder,
) -> None:
    from assistant.extractive import ExtractiveWriter
    from assistant.models import Source, SourceSentence

    def source(number: int, text: str) -> Source:
        return Source(number=number, chunk_id=f"a{number}#h#0", article_id=f"a{number}",
                      title="Ever Given", score=1.0,
                      sentences=[SourceSentence(start=0, end=len(text), text=text)])

    question = "When was the Ever Given freed?"
    near_equal = [  # two wordings of the same fact, from the first and the second article
        source(1, "Salvage crews freed the Ever Given on Monday, March 29."),
        source(2, "The Ever Given was freed by salvage crews on Monday, March 29."),
    ]
    from dataclasses import replace

    from assistant.extractive import FITTED

    plain = ExtractiveWriter(embedder, threshold=0.0, max_sentences=1,  # relevance alone
                             weights=replace(FITTED, rank=0.0, novelty=0.0, span=0.0, floor=0.0))
    scores = {i: s for s, i, _ in plain.rank(question, near_equal)}
    first = 0 if scores[0] >= scores[1] else 1
    ordered = [near_equal[1 - first], near_equal[first]]  # the better-scoring sentence ranked second
    ordered = [s.model_copy(update={"number": n}) for n, s in enumerate(ordered, 1)]

    # source rank is one feature of the evidence model (fitted weight: FITTED.rank)
    ranked = ExtractiveWriter(embedder, threshold=0.0, max_sentences=1,
                              weights=replace(FITTED, rank=1.0))
    chosen = ranked.answer(question, ordered)
    assert "[1]" in chosen and "[2]" not in chosen
    unbiased = plain.answer(question, ordered)
    assert "[2]" in unbiased

    irrelevant_first = [source(1, "The bakery sold out of croissants."), near_equal[0]]
    irrelevant_first[1] = irrelevant_first[1].model_copy(update={"number": 2})
    strict = ExtractiveWriter(embedder, threshold=0.4, max_sentences=1,
                              weights=replace(FITTED, rank=1.0))
    assert "[2]" in strict.answer(question, irrelevant_first)  # relevance comes first


def test_extractive_how_many_questions_quote_a_sentence_that_states_a_quantity(
    embedder: Embedder,
) -> None:
    from assistant.extractive import ExtractiveWriter
    from assistant.models import Source, SourceSentence

    sentences = [
        "Crews worked through the weekend to free the container ship stuck in the Suez Canal.",
        "The container ship stuck in the Suez Canal held up 369 ships waiting to pass.",
    ]
    source = Source(number=1, chunk_id="a1#h#0", article_id="a1", title="Suez Canal", score=1.0,
                    sentences=[SourceSentence(start=0, end=len(t), text=t) for t in sentences])
    writer = ExtractiveWriter(embedder, threshold=0.3, max_sentences=1)
    answer = writer.answer("How many ships did the stuck container ship hold up?", [source])
    assert "369" in answer
    no_number = source.model_copy(update={"sentences": source.sentences[:1]})
    refused = writer.answer("How many ships did the stuck container ship hold up?", [no_number])
    assert refused == CANNOT_ANSWER
    # the same sentence answers a question that does not ask for a quantity
    assert "[1]" in writer.answer("What did crews do about the stuck ship?", [no_number])


def test_extractive_which_questions_prefer_a_sentence_naming_something_new(embedder: Embedder) -> None:
    from assistant.extractive import ExtractiveWriter
    from assistant.models import Source, SourceSentence

    sentences = [
        "The cuts were announced on Monday as the company tries to save money.",
        "The cuts at Disney, announced by chief executive Bob Iger on Monday, will eliminate 7,000 jobs.",
    ]
    source = Source(number=1, chunk_id="a1#h#0", article_id="a1", title="Job cuts", score=1.0,
                    sentences=[SourceSentence(start=0, end=len(t), text=t) for t in sentences])
    question = "Which company announced job cuts on Monday?"
    from dataclasses import replace

    from assistant.extractive import FITTED

    plain = ExtractiveWriter(embedder, threshold=0.3, max_sentences=1,  # relevance alone
                             weights=replace(FITTED, span=0.0, novelty=0.0, floor=0.0))
    scores = {j: s for s, _, j in plain.rank(question, [source])}
    assert scores[0] > scores[1]  # on wording alone the sentence that repeats the question wins
    assert "Disney" not in plain.answer(question, [source])
    named = ExtractiveWriter(embedder, threshold=0.3, max_sentences=1)
    assert "Disney" in named.answer(question, [source])


# --- choosing the writer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "env", "chosen"),
    [
        ("auto", {}, "extractive"),
        ("auto", {"openai_api_key": "sk-test"}, "openai:gpt-4o-mini"),
        ("auto", {"openai_base_url": "http://127.0.0.1:9/v1"}, "openai-compatible:gpt-4o-mini"),
        ("auto", {"openai_base_url": "http://127.0.0.1:9/v1", "llm_model": "llama3.1"},
         "openai-compatible:llama3.1"),
        ("extractive", {"openai_api_key": "sk-test"}, "extractive"),
        ("openai:gpt-4o", {"openai_api_key": "sk-test"}, "openai:gpt-4o"),
        ("openai-compatible:qwen", {"openai_base_url": "http://127.0.0.1:9/v1"},
         "openai-compatible:qwen"),
    ],
)
def test_the_llm_setting_picks_the_writer(
    settings: Settings, setting: str, env: dict[str, str], chosen: str
) -> None:
    from assistant.llm import choose_llm

    assert choose_llm(settings.updated(llm=setting, **env)).name == chosen


def test_an_unknown_writer_is_a_config_error_listing_the_known_ones(
    settings: Settings, embedder: Embedder
) -> None:
    from assistant.errors import ConfigError
    from assistant.llm import get_writer

    with pytest.raises(ConfigError, match="unknown llm 'psychic:oracle'") as info:
        get_writer(settings, embedder, llm="psychic:oracle")
    hint = info.value.hint or ""
    assert all(name in hint for name in ("'extractive'", "'openai:MODEL'", "'openai-compatible:MODEL'"))
    with pytest.raises(ConfigError, match="needs a server address"):
        get_writer(settings, embedder, llm="openai-compatible:m")
    with pytest.raises(ConfigError, match="needs an API key"):
        get_writer(settings, embedder, llm="openai:gpt-4o")


def test_a_new_backend_is_one_chat_model_and_one_registry_line(
    sample_index: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections.abc import Iterator, Sequence

    from assistant import llm
    from assistant.chat_model import ChatEvent, ChatMessage, Completion, TextDelta, Usage

    class Echo:  # a stand-in for e.g. a local GGUF model: quotes source [1]'s first sentence
        name = "echo:test"

        def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
                     temperature: float = 0.0) -> Completion:
            return Completion(text="".join(e.text for e in self.stream(messages)
                                           if isinstance(e, TextDelta)), usage=Usage())

        def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
                   temperature: float = 0.0) -> Iterator[ChatEvent]:
            first = re.search(r'\[1\] "[^"]*"[^\n]*\n(.+?[.!?])(?:\s|$)', messages[-1]["content"])
            yield TextDelta(f"{first.group(1) if first else CANNOT_ANSWER} [1]")
            yield Usage(prompt_tokens=7, completion_tokens=3)

    monkeypatch.setitem(llm.WRITERS, "echo", lambda choice, settings, _: llm.LLMWriter(
        Echo(), prompts=llm.load_prompts(settings.writer.prompts_dir)))
    writer = llm.get_writer(sample_index, embedder, llm="echo:test")
    answer = Assistant(sample_index, embedder=embedder, writer=writer).ask(ASSAD_Q)
    assert answer.mode == "llm" and answer.model == "echo:test" and answer.usage == {
        "prompt_tokens": 7, "completion_tokens": 3}
    assert answer.citations and answer.citations[0].number == 1


# --- filters and conversations ----------------------------------------------------------------


def test_impossible_filters_are_an_input_error_with_a_hint(
    sample_index: Settings, embedder: Embedder
) -> None:
    from assistant.errors import InputError
    from assistant.filters import make_filters

    with pytest.raises(InputError, match=r"since \(2021-01-02\) is after until \(2021-01-01\)") as info:
        make_filters(since="2021-01-02", until="2021-01-01")
    assert info.value.hint
    with pytest.raises(InputError, match="--since .* is after --as-of"):
        make_filters(since=date(2021, 1, 2), as_of=date(2021, 1, 1),
                     labels={"since": "--since", "as_of": "--as-of"})
    with pytest.raises(InputError, match="as_of: 'yesterday' is not a date") as info:
        make_filters(as_of="yesterday")
    assert "YYYY-MM-DD" in (info.value.hint or "")
    assert make_filters(outlets=["Northgate Post", " "], since=" ", until="2021-01-01") == Filters(
        outlets=["Northgate Post"], until=date(2021, 1, 1))
    # the old keyword filters go through the same check
    with pytest.raises(InputError, match="is after"):
        Assistant(sample_index, embedder=embedder).ask(
            ASSAD_Q, since=date(2021, 1, 2), until=date(2021, 1, 1))


def test_ask_takes_a_filters_object(sample_index: Settings, embedder: Embedder) -> None:
    assistant = Assistant(sample_index, embedder=embedder)
    answer = assistant.ask("Moscow summit ship telescope", Filters(outlets=["Northgate Post"]))
    assert answer.sources and {s.outlet for s in answer.sources} == {"Northgate Post"}
    timeline = assistant.timeline("Ever Given Suez Canal", Filters(as_of=date(2021, 3, 26)))
    assert timeline.events and all(
        s.published and s.published <= date(2021, 3, 26) for e in timeline.events for s in e.sources)


LAVROV_CHAT = [
    {"role": "user", "content": ASSAD_Q},
    {"role": "assistant", "content": "Around October 20 [1]."},
    {"role": "user", "content": "And what did Lavrov say?"},
]


def test_chat_answers_a_follow_up_with_the_conversations_topic(
    sample_index: Settings, embedder: Embedder
) -> None:
    assistant = Assistant(sample_index, embedder=embedder)
    answer = assistant.chat(LAVROV_CHAT)
    assert answer.question == "And what did Lavrov say?"
    assert answer.searched == "What did Lavrov say? (Assad, Moscow)"
    assert "Lavrov" in answer.text and not answer.refused
    # what Lavrov said is quoted only from sentences reporting him speaking
    assert {c.article_id for c in answer.citations} == {"sample-lavrov-free-syrian-army"}
    alone = assistant.ask("And what did Lavrov say?")
    assert alone.searched is None
    assert "sample-putin-assad-opposition-talks" not in {c.article_id for c in alone.citations}
    first = assistant.chat(LAVROV_CHAT[:1])
    assert first.searched is None and first.question == ASSAD_Q


def test_chat_stream_condenses_with_the_writers_chat_model(
    sample_index: Settings, embedder: Embedder, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(
        Reply("What did Lavrov say about Assad's visit to Moscow?"),
        Reply(cite_source_saying("Lavrov", "Lavrov said Russia wanted contacts with the group")),
    )
    assistant = Assistant(llm_settings(sample_index, fake_llm), embedder=embedder)
    events = list(assistant.chat_stream(LAVROV_CHAT))
    answer = events[-1].answer
    assert answer is not None and answer.mode == "llm" and answer.fallback is None
    assert answer.searched == "What did Lavrov say about Assad's visit to Moscow?"
    condense_request, answer_request = (r["body"] for r in fake_llm.requests)
    assert "Last message: And what did Lavrov say?" in condense_request["messages"][0]["content"]
    assert answer.searched in answer_request["messages"][-1]["content"]


def test_chat_without_a_user_question_is_an_input_error(
    sample_index: Settings, embedder: Embedder
) -> None:
    from assistant.errors import InputError

    with pytest.raises(InputError, match="no user message"):
        Assistant(sample_index, embedder=embedder).chat([{"role": "system", "content": "Hi"}])
