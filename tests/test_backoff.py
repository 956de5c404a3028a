"""
The one reconnect-with-backoff mechanism (pyrf_blocks.backoff), on a task.Clock.
"""

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from pyrf_blocks.backoff import Backoff


def retry_lines(events):
    return [e for e in events if "retry {n} of {retries}" in e.get("log_format", "")]


def test_delays_double_from_the_initial_one_up_to_the_maximum():
    """failed() gives initial, 2x, 4x... capped at the maximum, then None after the retries."""
    backoff = Backoff(Clock(), retries=5, initial=0.1, maximum=0.5)
    delays = [backoff.failed("me", "why") for _ in range(6)]
    assert delays[:5] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert delays[5] is None and backoff.failures == 6


def test_no_retries_means_the_first_failure_gives_up():
    """With retries=0 nothing is scheduled and the caller gives up at once."""
    clock = Clock()
    calls = []
    backoff = Backoff(clock, retries=0, initial=1.0, maximum=1.0)
    assert backoff.retry("me", "why", calls.append, 1) is False
    assert not backoff.pending and clock.getDelayedCalls() == []


def test_first_retries_count_until_the_thing_is_reached(logged):
    """With first_retries, failures before reach() count against it (0: the first gives up); after reach() against retries, logged as such."""
    never = Backoff(Clock(), retries=3, initial=0.1, maximum=1.0, first_retries=0)
    assert never.connecting and never.allowed == 0
    assert never.failed("me", "refused") is None
    waiting = Backoff(Clock(), retries=3, initial=0.1, maximum=1.0, first_retries=1)
    assert waiting.failed("me", "refused") == pytest.approx(0.1)
    waiting.succeeded()
    waiting.reach()
    assert not waiting.connecting and waiting.allowed == 3
    assert [waiting.failed("me", "lost") for _ in range(4)][3] is None
    assert [e["retries"] for e in retry_lines(logged)] == [1, 3, 3, 3]
    plain = Backoff(Clock(), retries=2, initial=0.1, maximum=1.0)
    assert not plain.connecting and plain.allowed == 2


def test_retry_calls_again_after_the_delay():
    """retry() schedules the call on the clock; it runs once the delay has passed."""
    clock = Clock()
    calls = []
    backoff = Backoff(clock, retries=3, initial=0.5, maximum=10.0)
    assert backoff.retry("me", "refused", calls.append, "again")
    assert backoff.pending
    clock.advance(0.49)
    assert calls == []
    clock.advance(0.02)
    assert calls == ["again"] and not backoff.pending
    assert backoff.retry("me", "refused", calls.append, "later")
    clock.advance(0.99)
    assert calls == ["again"]
    clock.advance(0.02)
    assert calls == ["again", "later"]


def test_a_success_starts_the_count_again():
    """After succeeded() the next failure waits the initial delay and counts from one."""
    clock = Clock()
    backoff = Backoff(clock, retries=2, initial=0.1, maximum=10.0)
    assert backoff.failed("me", "x") == pytest.approx(0.1)
    assert backoff.failed("me", "x") == pytest.approx(0.2)
    backoff.succeeded()
    assert backoff.failures == 0 and backoff.elapsed == 0.0
    assert backoff.failed("me", "x") == pytest.approx(0.1)
    assert backoff.failed("me", "x") == pytest.approx(0.2)
    assert backoff.failed("me", "x") is None


def test_elapsed_counts_from_the_first_failure_in_a_row():
    """elapsed is the clock's time since the first failure of the current row."""
    clock = Clock()
    clock.advance(100)
    backoff = Backoff(clock, retries=3, initial=1.0, maximum=1.0)
    backoff.failed("me", "x")
    clock.advance(2.5)
    backoff.failed("me", "x")
    assert backoff.elapsed == pytest.approx(2.5) and backoff.first_failure == 100


def test_cancel_forgets_a_scheduled_retry():
    """cancel() removes the pending call from the clock."""
    clock = Clock()
    calls = []
    backoff = Backoff(clock, retries=3, initial=1.0, maximum=1.0)
    backoff.retry("me", "x", calls.append, 1)
    backoff.cancel()
    clock.advance(5)
    assert calls == [] and not backoff.pending and clock.getDelayedCalls() == []


def test_sleep_fires_after_the_delay_and_can_be_cancelled():
    """sleep() is a Deferred for async loops: fires after the delay; cancelling it stops the wait."""
    clock = Clock()
    backoff = Backoff(clock, retries=2, initial=0.25, maximum=1.0)
    fired = []
    backoff.sleep("me", "x").addCallback(fired.append)
    clock.advance(0.24)
    assert fired == []
    clock.advance(0.02)
    assert fired == [None]
    waiting = backoff.sleep("me", "x")
    waiting.addErrback(lambda f: fired.append(f.check(defer.CancelledError)))
    waiting.cancel()
    assert fired[-1] is defer.CancelledError and clock.getDelayedCalls() == []
    assert backoff.sleep("me", "x") is None  # the retries are spent


def test_each_retry_is_logged_with_who_why_which_and_the_delay(logged):
    """A retry's log line names who retries, why, which retry of how many and the delay."""
    backoff = Backoff(Clock(), retries=3, initial=0.1, maximum=1.0)
    backoff.failed("fft_block 'fft'", "worker http://w failed: refused")
    backoff.failed("fft_block 'fft'", "worker http://w failed: refused")
    lines = retry_lines(logged)
    assert [e["log_format"].format(**e) for e in lines] == [
        "fft_block 'fft': worker http://w failed: refused; retry 1 of 3 in 0.10 s",
        "fft_block 'fft': worker http://w failed: refused; retry 2 of 3 in 0.20 s"]
    assert all(e["log_level"] == LogLevel.error for e in lines)


def test_the_log_level_is_the_callers_and_giving_up_logs_nothing(logged):
    """level= sets the retry line's level; the failure that gives up is the caller's to report."""
    backoff = Backoff(Clock(), retries=1, initial=1.0, maximum=1.0, level=LogLevel.warn)
    backoff.failed("wsa", "lost")
    assert backoff.failed("wsa", "lost") is None
    lines = retry_lines(logged)
    assert len(lines) == 1 and lines[0]["log_level"] == LogLevel.warn


def test_settings_changed_while_retrying_count_at_the_next_failure():
    """retries, initial and maximum set on a running Backoff apply from the next failure on."""
    backoff = Backoff(Clock(), retries=5, initial=0.1, maximum=0.5)
    assert backoff.failed("me", "x") == pytest.approx(0.1)
    backoff.initial, backoff.maximum = 1.0, 3.0
    assert backoff.failed("me", "x") == pytest.approx(2.0)
    assert backoff.failed("me", "x") == pytest.approx(3.0)
    backoff.retries = 3
    assert backoff.failed("me", "x") is None and backoff.failures == 4


def test_a_retry_setting_reaches_the_backoff_of_its_object():
    """RetrySetting: the object's value, and its running Backoff's too once it has one."""
    from pyrf_blocks.backoff import RetrySetting

    class Retrier:
        retries = RetrySetting("retries")
        delay = RetrySetting("initial")

        def __init__(self):
            self._backoff = None
            self.retries, self.delay = 2, 0.5

    retrier = Retrier()
    assert (retrier.retries, retrier.delay) == (2, 0.5)
    retrier._backoff = Backoff(Clock(), retrier.retries, retrier.delay, 10.0)
    retrier.retries, retrier.delay = 0, 4.0
    assert (retrier.retries, retrier.delay) == (0, 4.0)
    assert (retrier._backoff.retries, retrier._backoff.initial) == (0, 4.0)
    assert retrier._backoff.failed("me", "x") is None
    with pytest.raises(AttributeError):
        Retrier.__new__(Retrier).retries
