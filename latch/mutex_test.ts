import assert from "node:assert/strict";
import {
  HandleError,
  SabreError,
  type SharedHandle,
  SharedHeap,
  TimeoutError,
} from "../memory/mod.ts";
import { runWorkers, spawnWorkers } from "../testing/harness.ts";
import { HistoryClock, mergeHistories, type OpRecord } from "../testing/history.ts";
import { assertLinearizable, registerModel } from "../testing/linearizability.ts";
import { Mutex, MutexGuard, RwLock } from "./mod.ts";
import {
  allocWords,
  type CountArgs,
  type CountResult,
  holdElsewhere,
  type LockOnceArgs,
  posted,
  type RoundsArgs,
  type TryForeverArgs,
  view,
  type WaitAsyncArgs,
} from "./_latch_test_workers.ts";

const fixtures = new URL("./_latch_test_workers.ts", import.meta.url);
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The error `fn` throws; fails when it throws none. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected an error");
}

/** Runs the counting body in `workers` workers and checks that no increment was lost. */
async function countTest(workers: number, iterations: number, inHeap: boolean): Promise<void> {
  const heap = inHeap ? SharedHeap.create() : undefined;
  const mutex = Mutex.create(heap);
  const data = allocWords(heap, 4);
  const results = await runWorkers<CountArgs, CountResult>({
    module: fixtures,
    fn: "countMutex",
    workers,
    heap,
    args: { handle: mutex.handle, data, iterations },
    timeoutMs: 120_000,
  });
  const words = view(data);
  assert.equal(words[0], workers * iterations, "an increment was lost");
  assert.equal(results.reduce((n, r) => n + r.violations, 0), 0, "two workers were inside at once");
  assert.ok(!mutex.isLocked);
  const forms = new Set(results.flatMap((r) => Object.keys(r.forms)));
  for (
    const form of ["acquire", "guard", "withLock", "tryLock", "timeout", "async", "withLockAsync"]
  ) {
    assert.ok(forms.has(form), `form ${form} was never used`);
  }
}

Deno.test("Mutex: 4 workers of plain increments in every lock form lose none (heap)", async () => {
  await countTest(4, 100_000 * STRESS, true);
});

Deno.test("Mutex: 8 workers on 2 cores, mixed forms, lose no increment (standalone)", async () => {
  await countTest(8, 40_000 * STRESS, false);
});

Deno.test("Mutex: guards release with using, and double releases throw", () => {
  const mutex = Mutex.create();
  {
    using guard = mutex.lock();
    assert.ok(guard instanceof MutexGuard && guard.held && mutex.isLocked);
    assert.equal(mutex.tryLock(), undefined);
  }
  assert.ok(!mutex.isLocked, "using did not release");
  const guard = mutex.lock();
  guard.unlock();
  assert.ok(!guard.held);
  assert.throws(() => guard.unlock(), SabreError);
  guard[Symbol.dispose](); // no-op once released
  assert.ok(!mutex.isLocked);
  assert.throws(
    () => mutex.release(),
    (e) => e instanceof SabreError && /not locked/.test(e.message),
  );
  // withLock releases when the callback throws.
  assert.throws(() =>
    mutex.withLock(() => {
      throw new RangeError("inside");
    }), RangeError);
  assert.ok(!mutex.isLocked);
  // Not reentrant: a second attempt by the holder times out.
  mutex.acquire();
  assert.throws(() => mutex.lock({ timeoutMs: 0 }), TimeoutError);
  mutex.release();
});

Deno.test("Mutex: try forms fail while a worker holds the lock and succeed once it is free", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const holder = await holdElsewhere("mutex", mutex.handle, heap);
  try {
    assert.ok(mutex.isLocked);
    assert.equal(mutex.tryLock(), undefined);
    assert.equal(mutex.tryAcquire(), false);
  } finally {
    await holder.release();
  }
  const guard = mutex.tryLock();
  assert.ok(guard !== undefined);
  guard.unlock();
  assert.ok(mutex.tryAcquire());
  mutex.release();
});

Deno.test("Mutex: timeoutMs throws TimeoutError while a worker holds the lock; the lock stays usable", async () => {
  const mutex = Mutex.create();
  const holder = await holdElsewhere("mutex", mutex.handle);
  try {
    const error = thrown(() => mutex.lock({ timeoutMs: 30 }));
    assert.ok(error instanceof TimeoutError && error.timeoutMs === 30);
    assert.match(error.message, /lock Mutex.*30 ms/);
    assert.throws(() => mutex.acquire({ timeoutMs: 20 }), TimeoutError);
    assert.throws(
      () => mutex.withLock(() => assert.fail("ran unlocked"), { timeoutMs: 5 }),
      TimeoutError,
    );
    // 0 is one attempt without waiting.
    assert.throws(() => mutex.lock({ timeoutMs: 0 }), TimeoutError);
    await assert.rejects(mutex.lockAsync({ timeoutMs: 0 }), TimeoutError);
  } finally {
    await holder.release();
  }
  // Usable afterwards, though timed-out waiters left their mark on the state word.
  mutex.lock({ timeoutMs: 0 }).unlock();
  mutex.lock({ timeoutMs: 1000 }).unlock();
  assert.equal(mutex.withLock(() => 7, { timeoutMs: 1000 }), 7);
  assert.ok(!mutex.isLocked);
});

Deno.test("Mutex: an invalid timeoutMs is a RangeError (a TypeError when not a number) naming it, held or not", async () => {
  const mutex = Mutex.create();
  for (const held of [false, true]) {
    if (held) mutex.acquire();
    for (const timeoutMs of [-1, NaN, "5", null, -Infinity]) {
      const options = { timeoutMs } as unknown as { timeoutMs: number };
      const named = (e: unknown) =>
        e instanceof (typeof timeoutMs === "number" ? RangeError : TypeError) &&
        /'timeoutMs'/.test(e.message);
      assert.throws(() => mutex.lock(options), named);
      assert.throws(() => mutex.acquire(options), named);
      assert.throws(() => mutex.withLock(() => 0, options), named);
      await assert.rejects(mutex.lockAsync(options), named);
      await assert.rejects(mutex.acquireAsync(options), named);
    }
    assert.equal(mutex.isLocked, held, "a rejected call changed the lock");
  }
  mutex.release();
  // Infinity and undefined mean no limit.
  mutex.lock({ timeoutMs: Infinity }).unlock();
  mutex.lock({}).unlock();
});

Deno.test("Mutex: lockAsync on the main thread resolves when a worker releases, the event loop running meanwhile", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const holder = await holdElsewhere("mutex", mutex.handle, heap);
  let timerFired = false;
  let acquired = false;
  const pending = mutex.lockAsync().then((guard) => {
    acquired = true;
    return guard;
  });
  // The timer can only fire if waiting does not block this thread; it is
  // also what lets the holder go, so the lock cannot come first.
  setTimeout(() => {
    timerFired = true;
    assert.ok(!acquired);
    holder.releaseNow();
  }, 20);
  const guard = await pending;
  assert.ok(timerFired);
  assert.ok(mutex.isLocked);
  guard.unlock();
  await holder.release();
  // acquireAsync with a timeout: rejects while held, resolves once free.
  const again = await holdElsewhere("mutex-async", mutex.handle, heap);
  try {
    await assert.rejects(mutex.acquireAsync({ timeoutMs: 25 }), TimeoutError);
    await assert.rejects(mutex.lockAsync({ timeoutMs: 25 }), TimeoutError);
  } finally {
    await again.release();
  }
  await mutex.acquireAsync({ timeoutMs: 5000 });
  mutex.release();
});

Deno.test("Mutex: a waiter that gives up after it was woken passes the wake-up on", async () => {
  // The holder's release wakes this thread, the first in line; its wake-up
  // is only delivered after its deadline (this thread is kept busy), and
  // meanwhile the lock was taken with a plain 0 -> 1 CAS. The timed-out
  // waiter must leave the lock marked contended, or the worker parked
  // behind it is never woken.
  const mutex = Mutex.create();
  const holder = await holdElsewhere("mutex", mutex.handle);
  const early = mutex.acquireAsync({ timeoutMs: 200 });
  const deadline = performance.now() + 200;
  // Its own bound is longer than the group's: a lost wake-up fails the test.
  const waiter = spawnWorkers<LockOnceArgs, string>({
    module: fixtures,
    fn: "lockMutexOnce",
    workers: 1,
    args: { mutex: mutex.handle, timeoutMs: 40_000 },
    timeoutMs: 20_000,
  });
  try {
    await posted(waiter);
    await sleep(50); // let it park behind this thread
    holder.releaseNow();
    const took = mutex.tryAcquire();
    while (performance.now() <= deadline + 5) {
      // keep the wake-up of `early` undelivered until its deadline passed
    }
    if (took) {
      await assert.rejects(early, TimeoutError);
      mutex.release();
    } else {
      await early.then(() => mutex.release(), () => {});
    }
    assert.deepEqual(await waiter.results, ["locked"]);
  } finally {
    await holder.release();
    await waiter.terminateAll();
  }
});

Deno.test("Mutex termination: a release whose notify never came (its worker stopped in between) still reaches the parked waiter", async () => {
  // White-box: word 1 of the mutex is its state, 2 when contended. This
  // thread takes the mutex, a worker parks behind it, and this thread then
  // frees the word without a notify, as a releaser stopped between its
  // store and its Atomics.notify would.
  const mutex = Mutex.create();
  const { sab, offset } = mutex.handle;
  const state = new Int32Array(sab, offset, 2);
  mutex.acquire();
  const waiter = spawnWorkers<LockOnceArgs, string>({
    module: fixtures,
    fn: "lockMutexOnce",
    workers: 1,
    args: { mutex: mutex.handle, timeoutMs: 30_000 },
    timeoutMs: 40_000,
  });
  try {
    await posted(waiter);
    while (Atomics.load(state, 1) !== 2) await sleep(2);
    await sleep(50); // let it park
    Atomics.store(state, 1, 0);
    // Without a slice that ends its park, the waiter sleeps past its own
    // 30 s bound and answers "timed out".
    assert.deepEqual(await waiter.results, ["locked"]);
  } finally {
    await waiter.terminateAll();
  }
});

Deno.test("Mutex termination: a holder killed with the lock leaves waiters timing out, not hanging", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const holder = await holdElsewhere("mutex", mutex.handle, heap);
  const waiters = spawnWorkers<TryForeverArgs, number>({
    module: fixtures,
    fn: "tryForever",
    workers: 3,
    heap,
    args: { kind: "mutex", handle: mutex.handle, timeoutMs: 20 },
    timeoutMs: 60_000,
  });
  try {
    await holder.kill();
    // Not robust, as documented: the lock stays locked for good, and every
    // waiter keeps timing out.
    const seen = new Map<number, number>();
    await new Promise<void>((resolve) => {
      waiters.onMessage((index, timeouts) => {
        seen.set(index, timeouts as number);
        if (seen.size === 3 && [...seen.values()].every((n) => n >= 3)) resolve();
      });
    });
    assert.ok(mutex.isLocked);
    assert.throws(() => mutex.lock({ timeoutMs: 20 }), TimeoutError);
    await assert.rejects(mutex.lockAsync({ timeoutMs: 20 }), TimeoutError);
    assert.equal(mutex.tryLock(), undefined);
  } finally {
    await waiters.terminateAll();
  }
  assert.deepEqual(await waiters.results, [undefined, undefined, undefined]);
  // Whoever knows the holder is dead may release it for them (no owner is tracked).
  mutex.release();
  mutex.lock({ timeoutMs: 1000 }).unlock();
});

Deno.test("Mutex termination: workers killed while waiting leave the lock working for others", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  mutex.acquire();
  // One waits in timed attempts (killed between two), one in lockAsync (killed parked).
  const timed = spawnWorkers<TryForeverArgs, number>({
    module: fixtures,
    fn: "tryForever",
    workers: 1,
    heap,
    args: { kind: "mutex", handle: mutex.handle, timeoutMs: 10 },
  });
  const parked = spawnWorkers<WaitAsyncArgs, string>({
    module: fixtures,
    fn: "waitAsyncAndDie",
    workers: 1,
    heap,
    args: { kind: "mutex", handle: mutex.handle },
  });
  await Promise.all([posted(timed), posted(parked)]);
  await timed.terminate(0);
  await parked.terminate(0);
  assert.deepEqual(await timed.results, [undefined]);
  assert.deepEqual(await parked.results, [undefined]);
  mutex.release();
  // Nobody holds it; the state may still say "contended", which only costs a notify.
  assert.ok(!mutex.isLocked);
  mutex.lock({ timeoutMs: 1000 }).unlock();
  await countWith(mutex, heap);
});

async function countWith(mutex: Mutex, heap: SharedHeap): Promise<void> {
  const data = allocWords(heap, 4);
  await runWorkers<CountArgs, CountResult>({
    module: fixtures,
    fn: "countMutex",
    workers: 3,
    heap,
    args: { handle: mutex.handle, data, iterations: 2_000 },
    timeoutMs: 60_000,
  });
  assert.equal(view(data)[0], 6_000);
}

Deno.test("Mutex: histories of a Mutex-protected register are linearizable", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const rounds = 80 * STRESS;
  const data = allocWords(heap, rounds);
  const clock = HistoryClock.create();
  const perWorker = await runWorkers<RoundsArgs, OpRecord[][]>({
    module: fixtures,
    fn: "mutexRegisterRounds",
    workers: 4,
    heap,
    args: { lock: mutex.handle, data, rounds, opsPerRound: 8, clock: clock.handle },
    timeoutMs: 120_000,
  });
  for (let round = 0; round < rounds; round++) {
    const history = mergeHistories(perWorker.map((histories) => histories[round]));
    assert.equal(history.length, 32);
    assertLinearizable(history, registerModel(0), { timeoutMs: 10_000 });
  }
});

Deno.test("Mutex: attach refuses handles that do not name a Mutex", () => {
  const heap = SharedHeap.create();
  const inHeap = Mutex.create(heap);
  const standalone = Mutex.create();
  const rw = RwLock.create(heap);
  const bad = (handle: unknown, pattern: RegExp) =>
    assert.throws(
      () => Mutex.attach(handle as SharedHandle<"sabre.Mutex">),
      (e) => e instanceof HandleError && pattern.test(e.message),
    );
  // Round trips work for both placements.
  Mutex.attach(structuredClone(inHeap.handle)).lock().unlock();
  Mutex.attach(structuredClone(standalone.handle)).lock().unlock();
  // Another kind's handle.
  bad(rw.handle, /kind/);
  bad(RwLock.create().handle, /kind/);
  // Truncated handles and non-objects.
  for (const handle of [standalone.handle, inHeap.handle]) {
    for (const field of ["kind", "version", "sab", "offset"]) {
      const { [field as "kind"]: _, ...rest } = handle;
      bad(rest, new RegExp(`'${field}'`));
    }
  }
  bad(undefined, /not an object/);
  bad("sabre.Mutex", /not an object/);
  // A buffer that holds no mutex: fresh zeroes, or a growable one that is no heap.
  bad({ ...standalone.handle, sab: new SharedArrayBuffer(64) }, /holds no Mutex/);
  const noise = new SharedArrayBuffer(64);
  crypto.getRandomValues(new Uint8Array(noise));
  new Int32Array(noise)[0] = 0; // make sure the tag cannot match by chance
  bad({ ...standalone.handle, sab: noise }, /holds no Mutex/);
  bad(
    { ...inHeap.handle, sab: new SharedArrayBuffer(1 << 16, { maxByteLength: 1 << 20 }) },
    /heap/,
  );
  bad({ ...standalone.handle, sab: new ArrayBuffer(64) }, /SharedArrayBuffer/);
  // An offset that holds something else, or no room.
  bad({ ...inHeap.handle, offset: (rw.handle as SharedHandle).offset }, /holds no Mutex/);
  bad({ ...inHeap.handle, offset: heap.allocateZeroed(64) }, /holds no Mutex/);
  bad({ ...standalone.handle, offset: 4 }, /offset/);
  bad({ ...standalone.handle, offset: 2 }, /offset/);
  bad({ ...inHeap.handle, offset: -8 }, /offset/);
  // A newer layout version.
  bad({ ...standalone.handle, version: 2 }, /version/);
  bad({ ...inHeap.handle, version: 2 }, /newer/);
  bad({ ...standalone.handle, version: 0 }, /version/);
});

Deno.test("Mutex: destroy frees the heap block, refuses while locked, and kills the handle", () => {
  const heap = SharedHeap.create();
  const before = heap.stats().liveBlocks;
  const mutex = Mutex.create(heap);
  assert.equal(heap.stats().liveBlocks, before + 1);
  mutex.acquire();
  assert.throws(() => mutex.destroy(), SabreError);
  mutex.release();
  const handle = mutex.handle;
  mutex.destroy();
  assert.equal(heap.stats().liveBlocks, before);
  assert.throws(() => Mutex.attach(handle), HandleError);
  Mutex.create().destroy(); // standalone: nothing to free
});
