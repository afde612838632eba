"""Condensing a follow-up into a standalone question: the rule as a table, then the LLM path.

The LLM is the OpenAI-protocol server on loopback; nothing else is faked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from assistant.chat_model import OpenAIChatModel
from assistant.errors import InputError
from assistant.followup import condense, condense_by_rule, split_conversation
from assistant.llm import choose_llm, get_writer
from assistant.prompts import load_prompts
from assistant.settings import Settings, get_settings
from tests.fake_openai import FakeOpenAI, Reply

ASSAD = "When did Assad visit Moscow?"


def chat(*questions: str) -> list[dict[str, str]]:
    """A conversation: each question followed by a short answer (the rule ignores answers)."""
    return [m for q in questions for m in ({"role": "user", "content": q},
                                           {"role": "assistant", "content": "An answer [1]."})]


# --- the rule (no LLM) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("earlier", "question", "standalone"),
    [
        # nothing to follow up on: the question as typed, spaces tidied
        ((), "  When did Assad   visit Moscow? ", ASSAD),
        # a new topic is left alone
        ((ASSAD,), "Who won the Brexit referendum?", "Who won the Brexit referendum?"),
        ((ASSAD,), "When did the Philae lander touch down on the comet?",
         "When did the Philae lander touch down on the comet?"),
        # an opening connective: drop it, carry the names of the previous question
        ((ASSAD,), "And what did Lavrov say?", "What did Lavrov say? (Assad, Moscow)"),
        ((ASSAD,), "and   what did Lavrov say? ", "What did Lavrov say? (Assad, Moscow)"),
        ((ASSAD,), "But why did he go?", "Why did he go? (Assad, Moscow)"),
        # a pronoun refers back
        ((ASSAD,), "How long did he stay there?", "How long did he stay there? (Assad, Moscow)"),
        # short questions
        ((ASSAD,), "Why?", "Why? (Assad, Moscow)"),
        ((ASSAD,), "Who else went?", "Who else went? (Assad, Moscow)"),
        # names the follow-up already has are not repeated
        ((ASSAD,), "And when did Assad fly home?", "When did Assad fly home? (Moscow)"),
        # "what about X" and "and X" ask the previous question again about X
        ((ASSAD,), "What about Putin?", "When did Assad visit Moscow? (Putin)"),
        ((ASSAD,), "And Lavrov?", "When did Assad visit Moscow? (Lavrov)"),
        ((ASSAD,), "what about Moscow?", ASSAD),
        # multi-word names, names with particles, years and acronyms
        (("Did Bashar al-Assad meet Vladimir Putin?",), "Where?",
         "Where? (Bashar al-Assad, Vladimir Putin)"),
        (("What did the Free Syrian Army say about the 2015 strikes?",), "Why?",
         "Why? (Free Syrian Army, 2015)"),
        (("What was the WHO's announcement?",), "When was it?", "When was it? (WHO)"),
        (('What did the "grand finale" of Cassini involve?',), "Why?",
         "Why? (grand finale, Cassini)"),
        # a question without names carries its content words
        (("when did the container ship get stuck?",), "And when was it freed?",
         "When was it freed? (container, ship, stuck)"),
        # a chain of follow-ups keeps the topic that opened it
        ((ASSAD, "And what did Lavrov say?"), "When did he say it?",
         "When did he say it? (Lavrov, Assad, Moscow)"),
        ((ASSAD, "And what did Lavrov say?"), "What about Peskov?",
         "What did Lavrov say? (Peskov, Assad, Moscow)"),
        # ... until a new topic starts a new chain
        ((ASSAD, "Who won the Brexit referendum?"), "Why?", "Why? (Brexit)"),
    ],
)
def test_rule(earlier: tuple[str, ...], question: str, standalone: str) -> None:
    assert condense_by_rule(chat(*earlier), question) == standalone


def test_rule_keeps_at_most_six_terms() -> None:
    long = "Did Ann, Bob, Cy, Di, Ed, Flo and Gus meet in Paris?"
    assert condense_by_rule(chat(long), "Why?") == "Why? (Ann, Bob, Cy, Di, Ed, Flo)"


def test_answers_and_odd_messages_do_not_count_as_questions() -> None:
    history: list[dict[str, Any]] = [
        {"role": "assistant", "content": "Hello! Ask me about Moscow."},
        {"role": "user", "content": ["not", "text"]},
        {"role": "user", "content": "  "},
    ]
    assert condense_by_rule(history, "Why?") == "Why?"


def test_without_an_llm_configured_condense_uses_the_rule(settings: Settings) -> None:
    assert choose_llm(settings).kind == "extractive"
    assert condense(chat(ASSAD), "And what did Lavrov say?", settings=settings) == (
        "What did Lavrov say? (Assad, Moscow)")


@pytest.mark.parametrize(
    ("messages", "history", "question"),
    [
        ([{"role": "user", "content": " When did  Assad visit Moscow? "}], 0, ASSAD),
        ([*chat(ASSAD), {"role": "user", "content": "Why?"}], 2, "Why?"),
        # the last user message is the question, whatever follows it
        ([*chat(ASSAD), {"role": "user", "content": "Why?"}, {"role": "assistant", "content": ""}],
         2, "Why?"),
        # OpenAI content parts: the text parts joined
        ([{"role": "user", "content": [{"type": "text", "text": ASSAD},
                                       {"type": "image_url", "image_url": {"url": "x"}}]}],
         0, ASSAD),
    ],
)
def test_a_conversation_splits_into_history_and_the_last_user_question(
    messages: list[dict[str, Any]], history: int, question: str
) -> None:
    before, last = split_conversation(messages)
    assert len(before) == history and last == question


@pytest.mark.parametrize("messages", [[], [{"role": "system", "content": "Be brief."}],
                                      [{"role": "user", "content": "   "}]])
def test_a_conversation_without_a_user_question_is_an_input_error(
    messages: list[dict[str, Any]]
) -> None:
    with pytest.raises(InputError, match="no user message") as info:
        split_conversation(messages)
    assert info.value.hint


# --- the LLM ---------------------------------------------------------------------------------


@pytest.fixture
def llm_settings(tmp_path: Path, fake_llm: FakeOpenAI) -> Settings:
    return get_settings(data_dir=tmp_path / "data", llm="openai-compatible:test-model",
                        openai_base_url=fake_llm.base_url, llm_max_retries=0, llm_timeout=5)


@pytest.fixture
def model(fake_llm: FakeOpenAI) -> OpenAIChatModel:
    return OpenAIChatModel("test-model", api_key=None, base_url=fake_llm.base_url, timeout=5,
                           max_retries=0, label="openai-compatible")


def test_the_llm_rewrites_the_follow_up_with_the_conversation(
    llm_settings: Settings, fake_llm: FakeOpenAI, model: OpenAIChatModel
) -> None:
    fake_llm.script(Reply("What did Lavrov say about Assad's visit to Moscow?"))
    history = chat(ASSAD)
    history[1]["content"] = "Assad visited Moscow on October 20 [4]."
    standalone = condense(history, "And what did Lavrov say?", settings=llm_settings,
                          chat_model=model)
    assert standalone == "What did Lavrov say about Assad's visit to Moscow?"
    [request] = fake_llm.requests
    prompt = request["body"]["messages"][0]["content"]
    assert "User: When did Assad visit Moscow?" in prompt
    assert "Assistant: Assad visited Moscow on October 20." in prompt, "markers are stripped"
    assert "Last message: And what did Lavrov say?" in prompt
    assert request["body"]["model"] == "test-model" and request["body"]["temperature"] == 0
    assert request["body"]["max_tokens"] == 120 and not request["body"].get("stream")


def test_the_answering_writers_chat_model_is_reused(
    llm_settings: Settings, fake_llm: FakeOpenAI
) -> None:
    writer = get_writer(llm_settings, None)  # type: ignore[arg-type]
    assert writer.chat_model is not None and writer.chat_model.name == "openai-compatible:test-model"
    fake_llm.script(Reply("Standalone question: \"Why did Assad go to Moscow?\"\nBecause..."))
    assert condense(chat(ASSAD), "Why?", settings=llm_settings, chat_model=writer.chat_model) == (
        "Why did Assad go to Moscow?")


def test_without_a_chat_model_given_the_rule_is_used_even_with_an_llm_configured(
    llm_settings: Settings, fake_llm: FakeOpenAI
) -> None:
    assert condense(chat(ASSAD), "Why?", settings=llm_settings) == "Why? (Assad, Moscow)"
    assert fake_llm.requests == []


def test_no_history_means_no_llm_call(
    llm_settings: Settings, fake_llm: FakeOpenAI, model: OpenAIChatModel
) -> None:
    assert condense([], ASSAD, settings=llm_settings, chat_model=model) == ASSAD
    assert fake_llm.requests == []


@pytest.mark.parametrize("reply", [Reply(status=500), Reply(""), Reply("x" * 500)])
def test_a_failing_or_useless_llm_falls_back_to_the_rule_and_logs_why(
    llm_settings: Settings, fake_llm: FakeOpenAI, model: OpenAIChatModel, reply: Reply,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm.script(reply)
    with caplog.at_level(logging.WARNING, logger="assistant.followup"):
        standalone = condense(chat(ASSAD), "And what did Lavrov say?", settings=llm_settings,
                              chat_model=model)
    assert standalone == "What did Lavrov say? (Assad, Moscow)"
    assert "using the rule instead" in caplog.text


def test_the_prompt_file_is_checked_with_the_others() -> None:
    prompts = load_prompts(Path(__file__).resolve().parent.parent / "prompts")
    assert prompts["condense"].format(history="User: hi", question="Why?").rstrip().endswith(
        "Standalone question:")
