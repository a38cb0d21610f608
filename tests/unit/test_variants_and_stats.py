"""Pure rules of variants and statistics: the split by SHA-256, the campaign zone's buckets,
and the two-proportion z-test that marks a leading variant."""

import hashlib
from collections import Counter
from datetime import UTC, datetime

import pytest

from drumbeat.domain import stats, variants


def test_a_variant_is_sha256_of_lead_and_step_and_never_changes():
    digest = hashlib.sha256(b"42:1").digest()
    point = int.from_bytes(digest[:8], "big") * 4 >> 64
    assert variants.pick(42, 1, [3, 1]) == (0 if point < 3 else 1)
    assert [variants.pick(i, 0, [1, 1, 1]) for i in range(200)] == [variants.pick(i, 0, [1, 1, 1]) for i in range(200)]
    assert variants.pick(7, 0, [1, 1]) == variants.pick(7, 0, [1, 1])
    counts = Counter(variants.pick(i, 2, [1, 2, 7]) for i in range(10_000))
    assert abs(counts[0] - 1000) < 150 and abs(counts[1] - 2000) < 200 and abs(counts[2] - 7000) < 230


def test_weights_must_be_positive():
    with pytest.raises(ValueError):
        variants.pick(1, 0, [1, 0])


def test_a_step_without_variants_has_none_and_renders_its_template():
    step = {"channel": "sms", "template": {"body": "x"}}
    assert variants.variant_of(step, 0, 5) is None and variants.template_of(step, 3) == {"body": "x"}
    ab = {**step, "variants": [{"template": {"body": "a"}, "weight": 1}, {"template": {"body": "b"}, "weight": 1}]}
    assert variants.template_of(ab, variants.variant_of(ab, 0, 5))["body"] == "ab"[variants.pick(5, 0, [1, 1])]
    assert variants.variant_of(ab, 0, None) == 0


def test_hour_buckets_start_at_the_zones_hours_even_at_half_hour_offsets():
    start = datetime(2026, 3, 2, 10, 40, tzinfo=UTC)  # 16:10 in Kolkata (UTC+5:30)
    got = stats.buckets(start, datetime(2026, 3, 2, 13, 0, tzinfo=UTC), "Asia/Kolkata", stats.Interval.HOUR)
    assert got == [datetime(2026, 3, 2, h, 30, tzinfo=UTC) for h in (10, 11, 12)]


def test_day_buckets_start_at_local_midnights_across_a_dst_change():
    got = stats.buckets(datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC),
                        "America/New_York", stats.Interval.DAY)
    assert got == [datetime(2026, 10, 24, 4, tzinfo=UTC), datetime(2026, 10, 25, 4, tzinfo=UTC),
                   datetime(2026, 10, 26, 4, tzinfo=UTC)]
    got = stats.buckets(datetime(2026, 11, 1, 12, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC),
                        "America/New_York", stats.Interval.DAY)
    assert got == [datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC)]
    with pytest.raises(ValueError):
        stats.buckets(datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "UTC", stats.Interval.HOUR)


def test_quarter_keys_name_utc_quarter_hours():
    assert stats.quarter_key(datetime(2026, 3, 2, 10, 44, 59, tzinfo=UTC)) == "2026-03-02T10:30"
    assert stats.quarter_start("2026-03-02T10:30") == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def test_the_z_test_matches_a_worked_example():
    # 120/1000 vs 90/1000: pooled 0.105, se = sqrt(.105 * .895 * .002) = 0.013709; z = 0.03 / se = 2.1884
    assert stats.z_score(120, 1000, 90, 1000) == pytest.approx(2.1884, abs=1e-3)
    assert stats.z_score(0, 10, 0, 10) == 0 and stats.z_score(1, 0, 1, 10) == 0


def test_a_leader_is_marked_only_when_it_beats_every_other_variant_at_95_percent():
    assert stats.leading_variant([(90, 1000), (120, 1000)]) == stats.Leader(1, True)
    assert stats.leading_variant([(100, 1000), (120, 1000)]) == stats.Leader(1, False)  # z = 1.43
    assert stats.leading_variant([(50, 1000), (120, 1000), (110, 1000)]) == stats.Leader(1, False)
    assert stats.leading_variant([(5, 10), (0, 0)]) == stats.Leader(0, False)  # one untried: no verdict
    assert stats.leading_variant([(1, 10)]) is None and stats.leading_variant([(0, 0), (0, 0)]) is None
    assert stats.reply_rate(3, 12) == 0.25 and stats.reply_rate(0, 0) is None
