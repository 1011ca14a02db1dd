import assert from "node:assert/strict";
import {
  HandleError,
  SabreError,
  type SharedHandle,
  SharedHeap,
  TimeoutError,
} from "../memory/mod.ts";
import { Mutex } from "../latch/mod.ts";
import { runWorkers } from "../testing/harness.ts";
import { SeqCell, SeqLock, SeqLockWriteGuard } from "./mod.ts";
import {
  allocWords,
  type CountArgs,
  type CountResult,
  holdElsewhere,
  type SeqLockStressArgs,
  type StressResult,
  view,
} from "./_seqlock_test_workers.ts";

const fixtures = new URL("./_seqlock_test_workers.ts", import.meta.url);
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

/** The error `fn` throws; fails when it throws none. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected an error");
}

Deno.test("SeqLock stress: readers (read, readBegin/readRetry, tryRead) never accept a torn snapshot", async () => {
  const heap = SharedHeap.create();
  const lock = SeqLock.create(heap);
  const cells = 1_000;
  const data = allocWords(heap, cells + 1);
  view(data).fill(1, 1);
  const results = await runWorkers<SeqLockStressArgs, StressResult>({
    module: fixtures,
    fn: "seqLockStress",
    workers: 4,
    heap,
    args: {
      lock: lock.handle,
      data,
      cells,
      durationMs: 1_000 * STRESS,
      modes: ["read", "manual", "try"],
    },
    timeoutMs: 60_000 + 2_000 * STRESS,
  });
  const [writer, ...readers] = results;
  assert.ok(writer.writes > 0, "the writer never wrote");
  for (const [i, reader] of readers.entries()) {
    assert.equal(reader.bad, 0, `reader ${i} accepted ${reader.bad} torn snapshots`);
    assert.ok(reader.accepted > 0, `reader ${i} accepted no snapshot`);
  }
  assert.equal(lock.sequence, 2 * writer.writes);
});

async function countTest(workers: number, iterations: number, inHeap: boolean): Promise<void> {
  const heap = inHeap ? SharedHeap.create() : undefined;
  const lock = SeqLock.create(heap);
  const data = allocWords(heap, 4);
  const results = await runWorkers<CountArgs, CountResult>({
    module: fixtures,
    fn: "countSeqLock",
    workers,
    heap,
    args: { handle: lock.handle, data, iterations },
    timeoutMs: 120_000,
  });
  assert.equal(view(data)[0], workers * iterations, "an increment was lost");
  assert.equal(results.reduce((n, r) => n + r.violations, 0), 0, "two writers were inside at once");
  assert.equal(results.reduce((n, r) => n + r.torn, 0), 0, "a reader accepted a torn pair");
  assert.ok(results.reduce((n, r) => n + r.reads, 0) > 0);
  assert.equal(lock.sequence, 2 * workers * iterations, "every section moves the sequence by 2");
  const forms = new Set(results.flatMap((r) => Object.keys(r.forms)));
  for (const form of ["write", "writeLock", "beginWrite", "tryWriteLock", "timeout"]) {
    assert.ok(forms.has(form), `form ${form} was never used`);
  }
}

Deno.test("SeqLock: 4 workers of plain increments in write sections of every form lose none (heap)", async () => {
  await countTest(4, 60_000 * STRESS, true);
});

Deno.test("SeqLock: 8 workers on 2 cores, mixed writes and reads, lose no increment (standalone)", async () => {
  await countTest(8, 20_000 * STRESS, false);
});

Deno.test("SeqLock: write guards publish on dispose; double or unmatched ends throw", () => {
  const lock = SeqLock.create();
  assert.equal(lock.sequence, 0);
  {
    using guard = lock.writeLock();
    assert.ok(guard instanceof SeqLockWriteGuard && guard.held);
    assert.equal(lock.sequence, 1);
    assert.equal(lock.tryWriteLock(), undefined);
    assert.equal(lock.tryRead(() => "torn?"), undefined);
  }
  assert.equal(lock.sequence, 2);
  const guard = lock.writeLock();
  guard.unlock();
  assert.ok(!guard.held);
  assert.throws(() => guard.unlock(), SabreError);
  assert.throws(
    () => lock.endWrite(),
    (e) => e instanceof SabreError && /no write section/.test(e.message),
  );
  assert.equal(lock.sequence, 4);
  // write(fn) publishes even when fn throws, and the lock is free again.
  assert.throws(() => lock.write(() => assert.fail("inside")), /inside/);
  assert.equal(lock.sequence, 6);
  lock.writeLock({ timeoutMs: 0 }).unlock();
  assert.equal(lock.write(() => 5), 5);
});

Deno.test("SeqLock: readers retry across writes; errors count only when validated", () => {
  const lock = SeqLock.create();
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const stamp = lock.readBegin();
  assert.ok(!lock.readRetry(stamp));
  lock.write(() => Atomics.store(cell, 0, 1));
  assert.ok(lock.readRetry(stamp));
  // A write inside the read function forces one retry.
  let calls = 0;
  const seen = lock.read(() => {
    if (++calls === 1) lock.write(() => Atomics.store(cell, 0, 2));
    return Atomics.load(cell, 0);
  });
  assert.equal(seen, 2);
  assert.equal(calls, 2);
  // An error on torn data is retried; a validated one propagates.
  calls = 0;
  assert.equal(
    lock.read(() => {
      if (++calls === 1) {
        lock.write(() => {});
        throw new TypeError("torn");
      }
      return "ok";
    }),
    "ok",
  );
  assert.throws(() => lock.read(() => assert.fail("real")), /real/);
  assert.equal(lock.tryRead(() => Atomics.load(cell, 0)), 2);
  assert.equal(
    lock.tryRead(() => {
      lock.write(() => {});
      return 1;
    }),
    undefined,
  );
  assert.throws(() => lock.tryRead(() => assert.fail("validated")), /validated/);
});

Deno.test("SeqLock: while a worker writes, try forms fail and timed reads and writes time out", async () => {
  const heap = SharedHeap.create();
  const lock = SeqLock.create(heap);
  const holder = await holdElsewhere("seqlock-write", lock.handle, heap);
  try {
    assert.equal(lock.sequence % 2, 1);
    assert.equal(lock.tryWriteLock(), undefined);
    assert.equal(lock.tryRead(() => 1), undefined);
    const write = thrown(() => lock.writeLock({ timeoutMs: 30 }));
    assert.ok(write instanceof TimeoutError && write.timeoutMs === 30);
    // Named for the SeqLock, not for the mutex inside it.
    assert.match(write.message, /Cannot write SeqLock as it timed out after 30 ms/);
    assert.throws(() => lock.write(() => assert.fail("ran"), { timeoutMs: 10 }), TimeoutError);
    assert.throws(() => lock.beginWrite({ timeoutMs: 0 }), TimeoutError);
    const read = thrown(() => lock.read(() => 1, { timeoutMs: 30 }));
    assert.ok(read instanceof TimeoutError);
    assert.match(read.message, /read SeqLock/);
    assert.equal(read.timeoutMs, 30, "the error reports the timeout that was given");
    assert.throws(() => lock.readBegin({ timeoutMs: 0 }), TimeoutError);
    await assert.rejects(lock.writeLockAsync({ timeoutMs: 20 }), TimeoutError);
  } finally {
    await holder.release();
  }
  assert.equal(lock.sequence % 2, 0);
  assert.equal(lock.tryRead(() => 1), 1);
  lock.tryWriteLock()!.unlock();
  lock.writeLock({ timeoutMs: 0 }).unlock();
  assert.equal(lock.read(() => 2, { timeoutMs: 0 }), 2);
  assert.equal(lock.readBegin({ timeoutMs: 0 }), lock.sequence);
});

Deno.test("SeqLock: an invalid timeoutMs is a RangeError naming it", async () => {
  const lock = SeqLock.create();
  for (const timeoutMs of [-1, NaN, "5"]) {
    const options = { timeoutMs } as unknown as { timeoutMs: number };
    const named = (e: unknown) =>
      e instanceof (typeof timeoutMs === "number" ? RangeError : TypeError) &&
      /'timeoutMs'/.test(e.message) && /SeqLock/.test(e.message) && !/Mutex/.test(e.message);
    assert.throws(() => lock.writeLock(options), named);
    assert.throws(() => lock.beginWrite(options), named);
    assert.throws(() => lock.write(() => 0, options), named);
    assert.throws(() => lock.read(() => 0, options), named);
    assert.throws(() => lock.readBegin(options), named);
    await assert.rejects(lock.writeLockAsync(options), named);
  }
  assert.equal(lock.sequence, 0);
});

Deno.test("SeqLock: writeLockAsync on the main thread resolves once a worker's write ends", async () => {
  const lock = SeqLock.create();
  const holder = await holdElsewhere("seqlock-write", lock.handle);
  let timerFired = false;
  const pending = lock.writeLockAsync();
  setTimeout(() => {
    timerFired = true;
    holder.releaseNow();
  }, 20);
  const guard = await pending;
  assert.ok(timerFired, "writeLockAsync resolved before the worker's section ended");
  assert.equal(lock.sequence, 3);
  guard.unlock();
  await holder.release();
  assert.equal(lock.sequence, 4);
});

Deno.test("SeqLock termination: a writer killed inside its section leaves readers and writers timing out", async () => {
  // Not robust, as documented for the Mutex it builds on: the sequence stays
  // odd and the writer mutex locked for good.
  const lock = SeqLock.create();
  const holder = await holdElsewhere("seqlock-write", lock.handle);
  await holder.kill();
  assert.equal(lock.sequence % 2, 1);
  assert.throws(() => lock.read(() => 0, { timeoutMs: 20 }), TimeoutError);
  assert.throws(() => lock.readBegin({ timeoutMs: 20 }), TimeoutError);
  assert.throws(() => lock.writeLock({ timeoutMs: 20 }), TimeoutError);
  assert.equal(lock.tryRead(() => 0), undefined);
  assert.equal(lock.tryWriteLock(), undefined);
});

Deno.test("SeqLock: attach refuses handles that do not name a SeqLock", () => {
  const heap = SharedHeap.create();
  const lock = SeqLock.create(heap);
  lock.write(() => {});
  assert.equal(SeqLock.attach(structuredClone(lock.handle)).sequence, 2);
  assert.equal(SeqLock.attach(SeqLock.create().handle).sequence, 0);
  const bad = (handle: unknown) =>
    assert.throws(() => SeqLock.attach(handle as SharedHandle<"sabre.SeqLock">), HandleError);
  bad(Mutex.create(heap).handle);
  bad(SeqCell.create({ v: "i32" }).handle);
  bad({ ...SeqCell.create({ v: "i32" }, { heap }).handle, kind: "sabre.SeqLock" });
  bad({ ...SeqLock.create().handle, sab: new SharedArrayBuffer(64) });
  bad({ ...lock.handle, version: 1 });
  bad({ ...lock.handle, version: 3 });
  bad({ ...SeqLock.create().handle, offset: 64 });
  bad({ kind: "sabre.SeqLock" });
  const handle = lock.handle;
  lock.destroy();
  bad(handle);
});

Deno.test("SeqLock: destroy refuses during a write", () => {
  const heap = SharedHeap.create();
  const before = heap.stats().liveBlocks;
  const lock = SeqLock.create(heap);
  lock.beginWrite();
  assert.throws(() => lock.destroy(), SabreError);
  lock.endWrite();
  lock.destroy();
  assert.equal(heap.stats().liveBlocks, before);
});

Deno.test("SeqLock.writeAsync: waits for the writer asynchronously, then runs fn as a write section", async () => {
  const lock = SeqLock.create();
  lock.beginWrite();
  let ran = false;
  const pending = lock.writeAsync(() => {
    ran = true;
    // Inside the write section: the sequence is odd.
    return lock.sequence;
  });
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(ran, false);
  lock.endWrite();
  assert.equal(await pending, 3);
  assert.equal(lock.sequence, 4);
  // fn's error passes on, and the section ends.
  await assert.rejects(
    lock.writeAsync(() => {
      throw new Error("failed write");
    }),
    /failed write/,
  );
  assert.equal(lock.sequence % 2, 0);
  // A timeout does not run fn.
  lock.beginWrite();
  await assert.rejects(
    lock.writeAsync(() => assert.fail("ran"), { timeoutMs: 10 }),
    (e: unknown) => e instanceof TimeoutError,
  );
  lock.endWrite();
});
