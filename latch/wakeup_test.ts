/**
 * Every waker of the latch primitives notifies: workers park (sync and
 * async forms) with recovery from killed wakers off, so that a release that
 * forgot its `Atomics.notify` leaves them parked until their timeout and
 * fails the test (see testing/wakeups.ts).
 */

import assert from "node:assert/strict";
import { Condvar, HybridLatch, LatchWords, Mutex, RwLock } from "./mod.ts";
import { TimeoutError } from "../memory/mod.ts";
import { expectWoken } from "../testing/wakeups.ts";
import type { WakeArgs } from "./_wakeup_test_workers.ts";

const module = new URL("./_wakeup_test_workers.ts", import.meta.url);
const WORKERS = 4;

function run(args: WakeArgs, release: () => void | Promise<void>): Promise<unknown[]> {
  return expectWoken<WakeArgs>({ module, fn: "parkOnce", workers: WORKERS, args, release });
}

Deno.test("Mutex: release wakes each parked locker in turn", async () => {
  const mutex = Mutex.create();
  mutex.acquire();
  await run({ kind: "mutex", lock: mutex.handle }, () => mutex.release());
  assert.ok(!mutex.isLocked);
});

Deno.test("RwLock: a writer's release wakes the parked readers; a reader's and a writer's release wake parked writers", async () => {
  const lock = RwLock.create();
  lock.acquireWrite();
  await run({ kind: "rwlock-read", lock: lock.handle }, () => lock.releaseWrite());
  lock.acquireRead();
  await run({ kind: "rwlock-write", lock: lock.handle }, () => lock.releaseRead());
  lock.acquireWrite();
  await run({ kind: "rwlock-write", lock: lock.handle }, () => lock.releaseWrite());
  assert.ok(lock.isIdle);
});

Deno.test("RwLock: downgrading wakes the parked readers; so does a waiting writer that gives up", async () => {
  const lock = RwLock.create();
  lock.acquireWrite();
  await run({ kind: "rwlock-read", lock: lock.handle }, () => lock.downgradeWrite());
  lock.releaseRead();
  // Readers park behind an announced writer, which then times out.
  lock.acquireRead();
  const writing = lock.acquireWriteAsync({ timeoutMs: 2_000 });
  await run({ kind: "rwlock-read", lock: lock.handle }, async () => {
    await assert.rejects(writing, TimeoutError);
  });
  lock.releaseRead();
  assert.ok(lock.isIdle);
});

Deno.test("Condvar: each notifyOne wakes a parked waiter; notifyAll wakes them all", async () => {
  const mutex = Mutex.create();
  const condvar = Condvar.create();
  const words = new SharedArrayBuffer(4);
  const tokens = new Int32Array(words);
  const args = { lock: mutex.handle, condvar: condvar.handle, words };
  await run({ kind: "condvar-one", ...args }, () => {
    for (let i = 0; i < WORKERS; i++) {
      mutex.withLock(() => {
        Atomics.add(tokens, 0, 1);
        condvar.notifyOne();
      });
    }
  });
  assert.equal(Atomics.load(tokens, 0), 0);
  await run({ kind: "condvar-all", ...args }, () => {
    mutex.withLock(() => {
      Atomics.store(tokens, 0, 1);
      condvar.notifyAll();
    });
  });
  assert.equal(condvar.waiters, 0);
});

Deno.test("HybridLatch: leaving exclusive mode wakes parked exclusive, shared and optimistic waiters; leaving shared mode wakes exclusive ones", async () => {
  const latch = HybridLatch.create();
  for (const kind of ["hybrid-exclusive", "hybrid-shared", "hybrid-optimistic"] as const) {
    const guard = latch.exclusive();
    await run({ kind, lock: latch.handle }, () => {
      guard.unlock();
    });
  }
  const shared = latch.shared();
  await run({ kind: "hybrid-exclusive", lock: latch.handle }, () => {
    shared.unlock();
  });
  assert.ok(latch.tryExclusive() !== undefined);
});

Deno.test("LatchWords: unlock wakes the parked optimistic readers", async () => {
  const words = new SharedArrayBuffer(4 * LatchWords.words);
  const view = new Int32Array(words);
  assert.ok(LatchWords.tryLock(view, 0));
  await run({ kind: "latch-words", words }, () => LatchWords.unlock(view, 0));
  assert.equal(view[1], 0, "no waiter left announced");
});
