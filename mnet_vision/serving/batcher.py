"""Micro-batching: requests that arrive together run as one model call, off the event loop.

A :class:`MicroBatcher` owns one worker thread (a single-thread executor): the model always runs there,
one batch at a time, so the event loop keeps accepting requests while it works and the model is never
called from two threads at once. The first request of a batch waits at most ``max_wait_ms`` for
others; a batch holds at most ``max_size`` items; requests that queued while the model was busy go
into the next batch at once, without waiting.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """The batcher is shutting down (or shut): the request was not run."""


class MicroBatcher(Generic[T, R]):
    """Batches items for ``run(items) -> results`` (one result per item, in order).

    ``run`` is called in the worker thread. A result that is an exception instance fails its own
    request only; when ``run`` raises for a whole batch of several items, each item is run alone so
    that only the item at fault fails (with its own exception) and the others get their results.

    ``calls`` counts the model calls and ``sizes`` their batch sizes (a :class:`~collections.Counter`
    of size -> calls): what the tests and ``GET /models`` read.
    """

    def __init__(self, run: Callable[[list[T]], Sequence[R | BaseException]], max_size: int = 8,
                 max_wait_ms: float = 5.0, name: str = "model"):
        if int(max_size) < 1:
            raise ValueError(f"max_size={max_size!r}: expected at least 1 item a batch")
        if float(max_wait_ms) < 0:
            raise ValueError(f"max_wait_ms={max_wait_ms!r}: expected milliseconds >= 0")
        self.run, self.max_size, self.max_wait = run, int(max_size), float(max_wait_ms) / 1000.0
        self.name = name
        self.calls = 0
        self.sizes: Counter[int] = Counter()
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    async def submit(self, item: T) -> R:
        """Run ``item`` in the next batch and return its result (or raise its exception)."""
        if self._closing:
            raise BatcherClosed(f"the {self.name} batcher is shutting down: request not run")
        self._start()
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    def open(self) -> None:
        """Take requests again after :meth:`close` (an app started a second time)."""
        self._closing = False

    def _start(self) -> None:
        """The collecting task on the running loop (a new loop, e.g. another test client, gets its own)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"batcher-{self.name}")
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        self._loop, self._queue = loop, asyncio.Queue()
        self._task = loop.create_task(self._collect(), name=f"batcher-{self.name}")

    async def _collect(self) -> None:
        queue, loop = self._queue, asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await queue.get()
            if first is None:
                break
            batch = [first]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_size:
                try:  # what queued while the model ran joins at once; then wait out the rest of max_wait
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                if item is None:  # close(): finish this batch and what queued before it, then stop
                    stopping = True
                    break
                batch.append(item)
            await self._run_batch(batch)
        while not queue.empty():  # queued before the stop: drained, not dropped
            item = queue.get_nowait()
            if item is not None:
                await self._run_batch([item])

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future]]) -> None:
        live = [(item, future) for item, future in batch if not future.cancelled()]  # a client that left
        if not live:
            return
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self._call,
                                                                       [item for item, _ in live])
        except BaseException as err:  # the executor itself failed (shut down): every request hears of it
            results = [err] * len(live)
        for (_, future), result in zip(live, results):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _call(self, items: list[T]) -> list[R | BaseException]:
        """In the worker thread: one model call for the batch, or one per item when the batch fails."""
        self.calls += 1
        self.sizes[len(items)] += 1
        try:
            results = list(self.run(items))
            if len(results) != len(items):
                raise RuntimeError(f"the {self.name} model returned {len(results)} results for {len(items)} items")
            return results
        except Exception as err:
            if len(items) == 1:
                return [err]
            log.info("%s: a batch of %d failed (%s); running its items one by one", self.name, len(items), err)
        return [self._call([item])[0] for item in items]

    def stats(self) -> dict[str, Any]:
        """``{"calls", "items", "sizes": {size: calls}}`` so far."""
        return {"calls": self.calls, "items": sum(s * n for s, n in self.sizes.items()),
                "sizes": {str(s): n for s, n in sorted(self.sizes.items())}}

    async def close(self) -> None:
        """Stop taking requests, run every request already queued, then stop the worker thread."""
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            if self._loop is asyncio.get_running_loop():
                await self._queue.put(None)
                await task
            else:  # a loop of an earlier client, gone: nothing can be waiting on it
                task.cancel()
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
