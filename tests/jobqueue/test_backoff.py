"""Retry backoff: full jitter within uniform(0, min(60, 2 * 2^(attempt-1)))."""

import random

from jobqueue.services import backoff_seconds


def test_it_stays_within_the_formulas_bounds():
    random.seed(1234)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        samples = [backoff_seconds(attempt) for _ in range(2000)]
        assert min(samples) >= 0
        assert max(samples) <= ceiling
        # Full jitter spreads over the whole range, not just near the ceiling.
        assert min(samples) < ceiling * 0.05
        assert max(samples) > ceiling * 0.95


def test_it_caps_at_sixty_seconds():
    assert max(backoff_seconds(30) for _ in range(500)) <= 60.0


def test_it_treats_attempt_zero_like_the_first():
    assert all(backoff_seconds(0) <= 2.0 for _ in range(500))
