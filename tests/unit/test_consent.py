"""Reading inbound texts for consent, and the keyed address hash (domain.consent)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drumbeat.domain.consent import (
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    address_hash,
    classify_inbound,
    is_help_request,
    keyword_conflicts,
    keyword_problem,
    normalize_keyword,
)


@pytest.mark.parametrize("text, word", [
    ("Stop.", "stop"), ("  STOP!!  ", "stop"), ("\tstop\n", "stop"), ("¡Alto!", "alto"),
    ("«HALT»", "halt"), ("stop 🛑", "stop"), ("stop by tomorrow?", "stop by tomorrow"), ("", ""),
])
def test_a_keyword_is_trimmed_of_spaces_and_punctuation_and_case_folded(text, word):
    assert normalize_keyword(text) == word


@pytest.mark.parametrize("text", ["STOP", "stop", "Stop.", "unsubscribe", "End", "OPTOUT!", " quit ", "StopAll"])
def test_every_default_opt_out_word_alone_is_an_opt_out(text):
    assert classify_inbound(text, [], []) == "opt_out"


@pytest.mark.parametrize("text", ["START", "unstop", "Start!"])
def test_the_default_opt_in_words_alone_are_opt_ins(text):
    assert classify_inbound(text, [], []) == "opt_in"


@pytest.mark.parametrize("text", ["stop by tomorrow?", "Please stop", "stopping by", "Thanks!", "", None,
                                  "START the engine", "halt"])
def test_anything_else_is_a_reply(text):
    assert classify_inbound(text, [], []) == "reply"


def test_a_workspace_adds_its_own_words_in_any_language_besides_the_defaults():
    out_words, in_words = ["Halt", "Abmelden", "BAJA", "Alto"], ["Anmelden", "ALTA"]
    assert classify_inbound("halt!", out_words, in_words) == "opt_out"
    assert classify_inbound("ABMELDEN", out_words, in_words) == "opt_out"
    assert classify_inbound("¡Baja!", out_words, in_words) == "opt_out"
    assert classify_inbound("alta", out_words, in_words) == "opt_in"
    assert classify_inbound("anmelden.", out_words, in_words) == "opt_in"
    assert classify_inbound("STOP", out_words, in_words) == "opt_out"  # the defaults stay
    assert classify_inbound("Halt mal kurz", out_words, in_words) == "reply"
    assert classify_inbound("halt", [], []) == "reply"  # another workspace's words are not these


def test_german_sharp_s_matches_its_case_folded_spelling():
    assert classify_inbound("STRASSE", ["straße"], []) == "opt_out"


@given(st.sampled_from(OPT_OUT_WORDS + OPT_IN_WORDS), st.text(alphabet=st.characters(categories=["Ll", "Lu"]),
                                                               min_size=1, max_size=20))
def test_a_longer_text_that_starts_with_a_keyword_is_a_reply(word, rest):
    assert classify_inbound(f"{word} {rest}", [], []) == "reply"


@given(st.sampled_from(OPT_OUT_WORDS), st.text(alphabet=" .!?,;:\t\n\"'()", max_size=5),
       st.text(alphabet=" .!?,;:\t\n\"'()", max_size=5), st.booleans())
def test_an_opt_out_word_stays_one_whatever_punctuation_and_case_surround_it(word, before, after, upper):
    assert classify_inbound(before + (word.upper() if upper else word) + after, [], []) == "opt_out"


def test_help_and_info_are_help_requests():
    assert is_help_request("HELP") and is_help_request("info?") and not is_help_request("help me please")


@pytest.mark.parametrize("word, problem", [("", "must hold a word"), ("  ", "must hold a word"),
                                            ("?!", "must hold a word"), ("x" * 33, "at most 32"),
                                            ("x" * 32, None), ("halt", None)])
def test_a_keyword_must_be_a_word_of_at_most_32_characters(word, problem):
    found = keyword_problem(word)
    assert (found is None) if problem is None else (problem in found)


def test_a_word_cannot_both_opt_out_and_opt_in():
    assert keyword_conflicts(["halt"], ["HALT"]) == {"halt"}
    assert keyword_conflicts(["start"], []) == {"start"}
    assert keyword_conflicts(["halt"], ["weiter"]) == set()


def test_the_address_hash_is_keyed_and_tells_phones_from_emails():
    one, other = b"k" * 32, b"j" * 32
    assert address_hash(one, phone="+4915123456701") == address_hash(one, phone="+4915123456701")
    assert address_hash(one, phone="+4915123456701") != address_hash(other, phone="+4915123456701")
    assert address_hash(one, phone="+4915123456701") != address_hash(one, phone="+4915123456702")
    assert address_hash(one, email="a@example.com") != address_hash(one, phone="a@example.com")
    assert len(address_hash(one, email="a@example.com")) == 64
    with pytest.raises(ValueError):
        address_hash(one)
