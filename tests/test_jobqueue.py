from __future__ import annotations

import threading

from appliance.catalog import connect
from appliance.context import Context
from appliance.jobqueue import JobQueue, NewJob


def _add(ctx: Context, n: int) -> list[str]:
    ids = []
    for i in range(n):
        jid = f"{i:032x}"
        ctx.queue.enqueue(NewJob(jid, "c", f"f{i}", b"f", "drop", f"{i:064x}", 1, None, 0.0))
        ids.append(jid)
    return ids


def test_concurrent_claims_never_share_a_job(ctx: Context) -> None:
    ids = _add(ctx, 60)
    claimed: list[list[str]] = [[], [], []]

    def worker(k: int) -> None:
        q = JobQueue(connect(ctx.settings.catalog_path, ctx.settings.store), ctx.keyring, ctx.audit)
        while (job := q.claim(f"w{k}")) is not None:
            claimed[k].append(job.id)
        q.conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [j for part in claimed for j in part]
    assert sorted(every) == sorted(ids)
    assert len(set(every)) == len(every)


def test_restart_recovery_requeues_without_counting_the_attempt(ctx: Context) -> None:
    _add(ctx, 1)
    job = ctx.queue.claim("w0")
    assert job is not None and job.attempts == 1
    assert ctx.queue.recover_after_restart() == 1
    again = ctx.queue.claim("w1")
    assert again is not None and again.id == job.id and again.attempts == 1


def test_dead_worker_jobs_are_requeued_with_the_attempt_counted(ctx: Context) -> None:
    _add(ctx, 2)
    a = ctx.queue.claim("w0")
    b = ctx.queue.claim("w1")
    assert a and b
    assert ctx.queue.release_worker("w0", "worker process died") == [a.id]
    again = ctx.queue.claim("w2")
    assert again is not None and again.id == a.id and again.attempts == 2
    assert ctx.queue.counts()["processing"] == 2
