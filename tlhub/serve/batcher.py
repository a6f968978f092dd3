"""Dynamic batching: concurrent requests gathered into one forward pass.

Requests queue up on the event loop; one task takes the first, waits up to ``max_wait_ms`` for more
(or until ``max_batch_size`` inputs), runs the model on all of them in a single worker thread (the
event loop keeps accepting requests meanwhile) and hands each request its rows. Under load the queue
fills while a batch runs, so the next batch starts full without waiting.

A request whose client went away (its future cancelled) is dropped before its batch runs, or its rows
are discarded after: it never blocks the others. A failure of the model fails that batch's requests only.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Job:
    items: list
    future: asyncio.Future = field(repr=False)


@dataclass
class BatchStats:
    batches: int = 0
    inputs: int = 0
    largest: int = 0
    dropped: int = 0  # requests whose client had gone before their batch ran
    model_seconds: float = 0.0  # wall time spent in ``run``


class Batcher:
    """``await submit(items)`` returns ``run(items)`` - computed together with other requests' items.

    ``run`` takes a list of inputs and returns one row per input (anything indexable by a slice).
    """

    def __init__(self, run: Callable[[list], Any], max_batch_size: int, max_wait_ms: float):
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_ms >= 0")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        self._carry: Job | None = None  # a job that did not fit the last batch: first in the next
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlhub-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="tlhub-batcher")

    async def stop(self) -> None:
        """Cancel the loop (after the server drained its requests) and let the model thread finish."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=True)

    async def submit(self, items: list) -> Any:
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not awaited")
        job = Job(list(items), asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def _next_batch(self) -> list[Job]:
        loop = asyncio.get_running_loop()
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, n = [first], len(first.items)
        deadline = loop.time() + self.max_wait
        while n < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except (asyncio.TimeoutError, TimeoutError):
                    break
            if n + len(job.items) > self.max_batch_size:
                self._carry = job  # over the limit: it opens the next batch
                break
            batch.append(job)
            n += len(job.items)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            live = [j for j in batch if not j.future.done()]  # done = cancelled: the client is gone
            self.stats.dropped += len(batch) - len(live)
            if not live:
                continue
            items = [x for j in live for x in j.items]
            start = time.perf_counter()
            try:
                rows = await loop.run_in_executor(self._pool, self.run, items)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the batch's requests get the error, the loop goes on
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            self.stats.model_seconds += time.perf_counter() - start
            self.stats.batches += 1
            self.stats.inputs += len(items)
            self.stats.largest = max(self.stats.largest, len(items))
            start = 0
            for j in live:
                if not j.future.done():
                    j.future.set_result(rows[start:start + len(j.items)])
                start += len(j.items)
