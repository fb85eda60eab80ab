"""Bounded admission: running slots, a FIFO waiting line, immediate refusal beyond it."""
from __future__ import annotations

import asyncio

import pytest

from libs.errors import Overloaded
from libs.llm.admission import Admission


async def settle() -> None:
    """Let every ready task run until none is left to make progress (no timing involved)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_runs_up_to_the_limit_queues_then_refuses():
    changes: list[tuple[int, int]] = []
    admission = Admission(2, 1, lambda running, waiting: changes.append((running, waiting)))
    await admission.acquire()
    await admission.acquire()
    waiter = asyncio.create_task(admission.acquire())
    await settle()
    assert (admission.running, admission.waiting) == (2, 1)
    with pytest.raises(Overloaded) as caught:
        await admission.acquire()
    assert "2 requests running and 1 waiting" in caught.value.message
    admission.release()
    await waiter
    assert (admission.running, admission.waiting) == (2, 0)
    admission.release()
    admission.release()
    assert (admission.running, admission.waiting) == (0, 0)
    assert changes[-1] == (0, 0) and (2, 1) in changes


async def test_waiters_are_served_in_arrival_order():
    admission = Admission(1, 3)
    await admission.acquire()
    order: list[int] = []

    async def wait(number: int) -> None:
        await admission.acquire()
        order.append(number)

    tasks = [asyncio.create_task(wait(number)) for number in range(3)]
    await settle()
    for _ in range(3):
        admission.release()
        await settle()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]


async def test_a_cancelled_waiter_leaves_the_line_and_takes_no_slot():
    admission = Admission(1, 2)
    await admission.acquire()
    gone = asyncio.create_task(admission.acquire())
    stays = asyncio.create_task(admission.acquire())
    await settle()
    gone.cancel()
    await settle()
    assert admission.waiting == 1
    admission.release()
    await stays
    assert (admission.running, admission.waiting) == (1, 0)


async def test_a_slot_handed_to_a_waiter_that_was_just_cancelled_is_given_back():
    admission = Admission(1, 1)
    await admission.acquire()
    waiter = asyncio.create_task(admission.acquire())
    await settle()
    admission.release()  # hands the slot to the waiter ...
    waiter.cancel()  # ... which gives up before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (admission.running, admission.waiting) == (0, 0)


async def test_without_a_waiting_line_the_second_request_is_refused():
    admission = Admission(1, 0)
    await admission.acquire()
    with pytest.raises(Overloaded):
        await admission.acquire()
