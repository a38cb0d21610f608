"""The failure window counts only the last `window` counted outcomes of a run."""

from hypothesis import given
from hypothesis import strategies as st

from drumbeat.domain.failure_window import evaluate

POLICY = {"window": 50, "threshold": 0.5, "min_samples": 20}


def test_below_min_samples_never_trips_even_if_all_failed():
    assert not evaluate([True] * 19, POLICY).tripped


def test_at_min_samples_with_the_threshold_share_failed_trips():
    verdict = evaluate([True] * 10 + [False] * 10, POLICY)
    assert verdict.tripped and verdict.share == 0.5


def test_only_the_newest_window_outcomes_count():
    recent = [False] * 50 + [True] * 100  # newest first: the old failures fall out of the window
    verdict = evaluate(recent, POLICY)
    assert verdict.counted == 50 and verdict.failed == 0 and not verdict.tripped


def test_details_carry_the_figures():
    details = evaluate([True] * 30 + [False] * 10, POLICY).as_details()
    assert details == {"window": 50, "counted": 40, "failed": 30, "failed_share": 0.75, "threshold": 0.5,
                       "min_samples": 20}


@given(st.lists(st.booleans(), max_size=200), st.integers(1, 100), st.floats(0.01, 1.0), st.integers(1, 100))
def test_tripped_iff_enough_samples_and_share_at_threshold(outcomes, window, threshold, min_samples):
    verdict = evaluate(outcomes, {"window": window, "threshold": threshold, "min_samples": min_samples})
    considered = outcomes[:window]
    assert verdict.counted == len(considered) and verdict.failed == sum(considered)
    share = sum(considered) / len(considered) if considered else 0.0
    assert verdict.tripped == (len(considered) >= min_samples and share >= threshold)
