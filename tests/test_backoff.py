"""The one jittered backoff: the n-th delay is between half and all of min(cap, base * 2**n)."""

from skyline.backoff import Backoff


def test_delays_double_up_to_the_cap_each_with_up_to_half_of_it_random():
    backoff = Backoff(base=1.0, cap=8.0)
    for ceiling in (1.0, 2.0, 4.0, 8.0, 8.0, 8.0):
        assert ceiling / 2 <= backoff.next_delay() <= ceiling


def test_reset_starts_over_from_the_base():
    backoff = Backoff(base=0.5, cap=30.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


def test_the_random_half_spreads_clients_out():
    assert len({Backoff(base=1.0, cap=1.0).next_delay() for _ in range(50)}) > 1
