"""MicroBatcher: requests arriving together form fewer, bounded batches; the model runs in one worker thread,
never two batches at once; a failing item fails alone; close() runs what was queued. Timeouts below only
guard against a hang (far above any wait the batcher may take), they assert no speed."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mnet_vision.serving.batcher import BatcherClosed, MicroBatcher

HANG = 20.0  # seconds: a test that waits this long is stuck, not slow


class Model:
    """Doubles numbers, recording each call's batch and thread, and how many calls ran at once."""

    def __init__(self, seconds: float = 0.0):
        self.seconds, self.batches, self.threads = seconds, [], set()
        self.running = self.most_at_once = 0
        self._guard = threading.Lock()

    def __call__(self, items):
        with self._guard:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            self.batches.append(list(items))
            self.threads.add(threading.get_ident())
            time.sleep(self.seconds)
            if "bad" in items:
                raise ValueError("the model cannot take 'bad'")
        finally:
            with self._guard:
                self.running -= 1
        return [item * 2 if item != "wrong" else ValueError("an item-level failure") for item in items]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, HANG))


def test_concurrent_submits_form_fewer_bounded_batches_each_getting_its_own_result():
    model = Model(seconds=0.01)

    async def main():
        batcher = MicroBatcher(model, max_size=4, max_wait_ms=50)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        await batcher.close()
        return results, batcher

    results, batcher = run(main())
    assert results == [2 * i for i in range(20)]
    assert len(model.batches) < 20 and all(1 <= len(b) <= 4 for b in model.batches)
    assert sorted(i for b in model.batches for i in b) == list(range(20))
    assert batcher.calls == len(model.batches) and batcher.stats()["items"] == 20
    assert model.most_at_once == 1  # never two model calls at once


def test_the_model_runs_in_one_worker_thread_off_the_event_loop():
    model = Model()

    async def main():
        batcher = MicroBatcher(model, max_size=2, max_wait_ms=1)
        for i in range(3):
            await batcher.submit(i)
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        await batcher.close()
        return threading.get_ident()

    loop_thread = run(main())
    assert len(model.threads) == 1 and loop_thread not in model.threads


def test_a_lone_request_is_run_after_the_wait_and_a_full_batch_without_it():
    model = Model()

    async def lone():
        batcher = MicroBatcher(model, max_size=8, max_wait_ms=20)
        result = await batcher.submit(21)
        await batcher.close()
        return result

    assert run(lone()) == 42 and model.batches == [[21]]

    full = Model()

    async def at_once():  # a wait of an hour: only a batch filled to max_size can come back
        batcher = MicroBatcher(full, max_size=3, max_wait_ms=3_600_000)
        results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(3))), HANG / 2)
        await batcher.close()  # the worker waits for a next first request, not the hour: close stops it
        return results

    assert run(at_once()) == [0, 2, 4] and full.batches == [[0, 1, 2]]


def test_an_exception_in_one_item_fails_only_that_request():
    model = Model()

    async def main():
        batcher = MicroBatcher(model, max_size=8, max_wait_ms=50)
        results = await asyncio.gather(*(batcher.submit(x) for x in (1, "bad", 3, "wrong", 5)),
                                       return_exceptions=True)
        await batcher.close()
        return results

    one, bad, three, wrong, five = run(main())
    assert (one, three, five) == (2, 6, 10)
    assert isinstance(bad, ValueError) and "cannot take 'bad'" in str(bad)
    assert isinstance(wrong, ValueError) and "item-level" in str(wrong)
    # the failed batch of five, then each of its items alone
    assert model.batches[0] == [1, "bad", 3, "wrong", 5] and [[x] for x in model.batches[0]] == model.batches[1:]


def test_close_runs_what_was_queued_then_refuses_new_requests():
    model = Model(seconds=0.02)

    async def main():
        batcher = MicroBatcher(model, max_size=2, max_wait_ms=5)
        pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(7)]
        await asyncio.sleep(0)  # all seven queued
        await batcher.close()
        assert all(p.done() for p in pending)
        with pytest.raises(BatcherClosed, match="shutting down"):
            await batcher.submit(99)
        batcher.open()  # an app started again takes requests again
        again = await batcher.submit(4)
        await batcher.close()
        return [p.result() for p in pending], again

    results, again = run(main())
    assert results == [2 * i for i in range(7)] and again == 8


@pytest.mark.parametrize(("keys", "message"), [({"max_size": 0}, "max_size"), ({"max_wait_ms": -1}, "max_wait_ms")])
def test_bad_settings_are_refused_naming_them(keys, message):
    with pytest.raises(ValueError, match=message):
        MicroBatcher(Model(), **keys)
