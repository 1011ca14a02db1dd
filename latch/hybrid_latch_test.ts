import assert from "node:assert/strict";
import {
  HandleError,
  SabreError,
  type SharedHandle,
  SharedHeap,
  TimeoutError,
} from "../memory/mod.ts";
import { runWorkers } from "../testing/harness.ts";
import {
  ExclusiveGuard,
  GuardReads,
  HybridLatch,
  isUnwind,
  LatchWords,
  Mutex,
  OPTIMISTIC_ATTEMPTS,
  OptimisticGuard,
  RwLock,
  SharedGuard,
  storeF64,
  Unwind,
} from "./mod.ts";
import {
  allocWords,
  type CountArgs,
  type CountResult,
  holdElsewhere,
  type HybridStressArgs,
  type StressResult,
  view,
} from "./_latch_test_workers.ts";

const fixtures = new URL("./_latch_test_workers.ts", import.meta.url);
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

/** The value `fn` throws; fails when it throws none. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected a throw");
}

async function stressTest(
  modes: HybridStressArgs["modes"],
  latchInHeap: boolean,
): Promise<void> {
  const heap = SharedHeap.create();
  const latch = HybridLatch.create(latchInHeap ? heap : undefined);
  const cells = 1_000;
  const data = allocWords(heap, cells + 1);
  view(data).fill(1, 1);
  const results = await runWorkers<HybridStressArgs, StressResult>({
    module: fixtures,
    fn: "hybridStress",
    workers: 4,
    heap,
    args: { latch: latch.handle, data, cells, durationMs: 1_000 * STRESS, modes },
    timeoutMs: 60_000 + 2_000 * STRESS,
  });
  const [writer, ...readers] = results;
  assert.ok(writer.writes > 0, "the writer never wrote");
  for (const [i, reader] of readers.entries()) {
    assert.equal(reader.bad, 0, `reader ${i} accepted ${reader.bad} torn snapshots`);
    assert.ok(reader.accepted > 0, `reader ${i} accepted no snapshot`);
  }
  assert.equal(latch.currentVersion(), 2 * writer.writes);
  assert.ok(view(data).subarray(1).every((cell) => cell === 1));
}

Deno.test("HybridLatch stress: optimistic readers (read(fn), optimisticOrSpin) never accept a torn snapshot", async () => {
  await stressTest(["read", "spin", "read"], true);
});

Deno.test("HybridLatch stress: optimisticOrUnwind + recheck and optimisticOrShared readers never accept a torn snapshot", async () => {
  await stressTest(["unwind", "shared", "unwind"], false);
});

async function countTest(workers: number, iterations: number, inHeap: boolean): Promise<void> {
  const heap = inHeap ? SharedHeap.create() : undefined;
  const latch = HybridLatch.create(heap);
  const data = allocWords(heap, 4);
  const results = await runWorkers<CountArgs, CountResult>({
    module: fixtures,
    fn: "countHybrid",
    workers,
    heap,
    args: { handle: latch.handle, data, iterations },
    timeoutMs: 120_000,
  });
  const increments = results.reduce((n, r) => n + r.increments, 0);
  assert.equal(view(data)[0], increments, "an increment was lost");
  assert.equal(
    results.reduce((n, r) => n + r.violations, 0),
    0,
    "exclusive mode was not exclusive",
  );
  assert.equal(
    latch.currentVersion(),
    2 * increments,
    "each exclusive section moves the version by 2",
  );
  const forms = new Set(results.flatMap((r) => Object.keys(r.forms)));
  for (
    const form of ["exclusive", "write", "tryExclusive", "upgrade", "optimisticRead", "shared"]
  ) {
    assert.ok(forms.has(form), `form ${form} was never used`);
  }
}

Deno.test("HybridLatch: 4 workers of plain increments in exclusive mode (also via upgrade) lose none (heap)", async () => {
  await countTest(4, 60_000 * STRESS, true);
});

Deno.test("HybridLatch: 8 workers on 2 cores, all modes mixed, lose nothing (standalone)", async () => {
  await countTest(8, 20_000 * STRESS, false);
});

Deno.test("HybridLatch: exclusive unlock hands back a valid optimistic guard at version + 1", () => {
  const latch = HybridLatch.create();
  assert.equal(latch.currentVersion(), 0);
  const exclusive = latch.exclusive();
  assert.ok(exclusive instanceof ExclusiveGuard && exclusive.held);
  assert.equal(exclusive.version, 1);
  assert.equal(latch.currentVersion(), 1);
  exclusive.recheck();
  const optimistic = exclusive.unlock();
  assert.ok(optimistic instanceof OptimisticGuard && optimistic.latch === latch);
  assert.equal(optimistic.version, exclusive.version + 1);
  assert.ok(optimistic.isValid());
  optimistic.recheck();
  assert.ok(!exclusive.held);
  assert.throws(() => exclusive.unlock(), SabreError);
  assert.throws(() => exclusive.recheck(), SabreError);
  // A later writer invalidates it.
  latch.write(() => {});
  assert.ok(!optimistic.isValid());
  assert.equal(thrown(() => optimistic.recheck()), Unwind.signal);
  {
    using _x = latch.exclusive();
  }
  assert.equal(latch.currentVersion(), 6, "using released the exclusive guard");
});

Deno.test("HybridLatch: Unwind is a bare preallocated signal, not an Error", () => {
  const latch = HybridLatch.create();
  const guard = latch.optimisticOrSpin();
  latch.exclusive().unlock();
  const signal = thrown(() => guard.recheck());
  assert.equal(signal, Unwind.signal);
  assert.ok(isUnwind(signal));
  assert.ok(!(signal instanceof Error));
  assert.equal((signal as { stack?: unknown }).stack, undefined);
  assert.match(String(signal), /Unwind/);
  assert.ok(!isUnwind(new Error("Unwind")));
  assert.ok(!isUnwind(undefined));
  // Every validating call throws that same value.
  const x = latch.exclusive();
  assert.equal(thrown(() => latch.optimisticOrUnwind()), Unwind.signal);
  x.unlock();
});

Deno.test("HybridLatch: shared guards read without validation and turn optimistic", () => {
  const latch = HybridLatch.create();
  latch.exclusive().unlock();
  const shared = latch.shared();
  assert.ok(shared instanceof SharedGuard && shared instanceof GuardReads && shared.held);
  assert.equal(shared.version, 2);
  shared.recheck();
  assert.equal(latch.tryExclusive(), undefined);
  const optimistic = shared.asOptimistic();
  assert.equal(optimistic.version, 2);
  shared.unlock();
  assert.throws(() => shared.unlock(), SabreError);
  assert.throws(() => shared.recheck(), SabreError);
  assert.throws(() => shared.asOptimistic(), SabreError);
  assert.ok(optimistic.isValid(), "valid until a writer enters");
  latch.exclusive().unlock();
  assert.ok(!optimistic.isValid());
  {
    using _s = latch.shared();
    assert.equal(latch.lock.readers, 1);
  }
  assert.equal(latch.lock.readers, 0, "using released the shared guard");
});

Deno.test("HybridLatch: toExclusive and toShared succeed untouched and unwind after a writer", () => {
  const latch = HybridLatch.create();
  // No writer in between: both upgrades work.
  let optimistic = latch.optimisticOrSpin();
  const shared = optimistic.toShared();
  assert.equal(shared.version, optimistic.version);
  shared.unlock();
  optimistic = latch.optimisticOrSpin();
  const exclusive = optimistic.toExclusive();
  assert.equal(exclusive.version, optimistic.version + 1);
  assert.equal(latch.currentVersion(), optimistic.version + 1);
  exclusive.unlock();
  // A writer in between: both unwind and leave nothing held.
  const stale = latch.optimisticOrSpin();
  latch.write(() => {});
  assert.ok(isUnwind(thrown(() => stale.toShared())));
  assert.ok(isUnwind(thrown(() => stale.toExclusive())));
  assert.equal(latch.lock.readers, 0);
  assert.ok(!latch.lock.isWriteLocked);
  assert.equal(latch.currentVersion() % 2, 0);
  // toShared never blocks: it unwinds while a writer is inside.
  const current = latch.optimisticOrSpin();
  const x = latch.exclusive();
  assert.ok(isUnwind(thrown(() => current.toShared())));
  x.unlock();
  // toExclusive waits for the other holders, within its timeout.
  const fresh = latch.optimisticOrSpin();
  const s = latch.shared();
  assert.throws(() => fresh.toExclusive({ timeoutMs: 20 }), TimeoutError);
  s.unlock();
  fresh.toExclusive({ timeoutMs: 1000 }).unlock();
});

Deno.test("HybridLatch: read(fn) retries invalidated attempts, then falls back to shared mode", () => {
  const latch = HybridLatch.create();
  // A writer intervenes in every optimistic attempt: after OPTIMISTIC_ATTEMPTS, shared.
  let calls = 0;
  let last: unknown;
  const result = latch.read((guard) => {
    calls++;
    last = guard;
    if (guard instanceof OptimisticGuard) latch.exclusive().unlock();
    return "done";
  });
  assert.equal(result, "done");
  assert.equal(calls, OPTIMISTIC_ATTEMPTS + 1);
  assert.ok(last instanceof SharedGuard && !last.held, "the fallback's guard was released");
  // An error in an invalidated attempt counts as a conflict; a validated one propagates.
  calls = 0;
  const value = latch.read(() => {
    if (++calls === 1) {
      latch.exclusive().unlock();
      throw new TypeError("torn data");
    }
    return calls;
  });
  assert.equal(value, 2);
  assert.throws(() => latch.read(() => assert.fail("real failure")), /real failure/);
  assert.equal(latch.lock.readers, 0);
  // write(fn) unlocks even when fn throws or unlocks by itself.
  assert.throws(() => latch.write(() => assert.fail("in write")), /in write/);
  assert.equal(latch.write((guard) => guard.unlock().version), latch.currentVersion());
  assert.ok(!latch.lock.isWriteLocked && latch.currentVersion() % 2 === 0);
});

Deno.test("HybridLatch: guard reads of f64 and bigint words round-trip", () => {
  const latch = HybridLatch.create();
  const words = new Int32Array(new SharedArrayBuffer(16));
  const big = new BigInt64Array(words.buffer, 8, 1);
  latch.write(() => {
    storeF64(words, 0, -1.5e300);
    Atomics.store(big, 0, -(2n ** 62n));
  });
  const [f, b] = latch.read((g) => [g.loadF64(words, 0), g.loadBigInt64(big, 0)] as const);
  assert.equal(f, -1.5e300);
  assert.equal(b, -(2n ** 62n));
  using shared = latch.shared();
  assert.ok(Object.is(shared.loadF64(new Int32Array(2), 0), 0));
});

Deno.test("HybridLatch: try forms against a worker in exclusive, then shared mode", async () => {
  const heap = SharedHeap.create();
  const latch = HybridLatch.create(heap);
  const writer = await holdElsewhere("hybrid-exclusive", latch.handle, heap);
  try {
    assert.equal(latch.currentVersion() % 2, 1);
    assert.equal(latch.tryExclusive(), undefined);
    assert.equal(latch.tryShared(), undefined);
    assert.ok(isUnwind(thrown(() => latch.optimisticOrUnwind())));
  } finally {
    await writer.release();
  }
  const reader = await holdElsewhere("hybrid-shared", latch.handle, heap);
  try {
    assert.equal(latch.tryExclusive(), undefined);
    const shared = latch.tryShared();
    assert.ok(shared !== undefined);
    shared.unlock();
    // Optimistic readers are not held back by shared holders.
    assert.ok(latch.optimisticOrUnwind().isValid());
    assert.ok(latch.optimisticOrShared() instanceof OptimisticGuard);
  } finally {
    await reader.release();
  }
  const exclusive = latch.tryExclusive();
  assert.ok(exclusive !== undefined);
  exclusive.unlock();
  latch.tryShared()!.unlock();
});

Deno.test("HybridLatch: timeoutMs throws TimeoutError while a worker holds it; the latch stays usable", async () => {
  const latch = HybridLatch.create();
  const writer = await holdElsewhere("hybrid-exclusive", latch.handle);
  const version = latch.currentVersion();
  try {
    assert.throws(() => latch.exclusive({ timeoutMs: 30 }), TimeoutError);
    assert.throws(() => latch.shared({ timeoutMs: 30 }), TimeoutError);
    assert.throws(() => latch.exclusive({ timeoutMs: 0 }), TimeoutError);
    assert.throws(() => latch.shared({ timeoutMs: 0 }), TimeoutError);
    assert.throws(() => latch.optimisticOrShared({ timeoutMs: 10 }), TimeoutError);
    assert.throws(() => latch.optimisticOrExclusive({ timeoutMs: 10 }), TimeoutError);
    assert.throws(() => latch.write(() => assert.fail("ran"), { timeoutMs: 10 }), TimeoutError);
    assert.equal(latch.currentVersion(), version, "a timed-out attempt moved the version");
  } finally {
    await writer.release();
  }
  const reader = await holdElsewhere("hybrid-shared", latch.handle);
  try {
    assert.throws(() => latch.exclusive({ timeoutMs: 20 }), TimeoutError);
    latch.shared({ timeoutMs: 0 }).unlock(); // the timed-out writer withdrew
  } finally {
    await reader.release();
  }
  latch.exclusive({ timeoutMs: 0 }).unlock();
  latch.shared({ timeoutMs: 1000 }).unlock();
  const guard = latch.optimisticOrExclusive({ timeoutMs: 0 });
  assert.ok(guard instanceof OptimisticGuard);
  for (const timeoutMs of [-1, NaN, "5"]) {
    const options = { timeoutMs } as unknown as { timeoutMs: number };
    const named = (e: unknown) =>
      e instanceof (typeof timeoutMs === "number" ? RangeError : TypeError) &&
      /'timeoutMs'/.test(e.message);
    assert.throws(() => latch.exclusive(options), named);
    assert.throws(() => latch.shared(options), named);
    assert.throws(() => latch.write(() => 0, options), named);
    assert.throws(() => latch.optimisticOrSpin().toExclusive(options), named);
    await assert.rejects(latch.exclusiveAsync(options), named);
    await assert.rejects(latch.sharedAsync(options), named);
  }
  assert.ok(!latch.lock.isWriteLocked && latch.lock.readers === 0);
});

Deno.test("HybridLatch: exclusiveAsync and sharedAsync resolve on release, the event loop running", async () => {
  const heap = SharedHeap.create();
  const latch = HybridLatch.create(heap);
  for (const mode of ["exclusive", "shared"] as const) {
    const holder = await holdElsewhere("hybrid-exclusive", latch.handle, heap);
    let timerFired = false;
    const pending = mode === "exclusive" ? latch.exclusiveAsync() : latch.sharedAsync();
    setTimeout(() => {
      timerFired = true;
      holder.releaseNow();
    }, 20);
    const guard = await pending;
    assert.ok(timerFired, `${mode}Async resolved before the holder let go`);
    guard.unlock();
    await holder.release();
  }
  const holder = await holdElsewhere("hybrid-exclusive", latch.handle, heap);
  try {
    await assert.rejects(latch.exclusiveAsync({ timeoutMs: 25 }), TimeoutError);
    await assert.rejects(latch.sharedAsync({ timeoutMs: 25 }), TimeoutError);
  } finally {
    await holder.release();
  }
  (await latch.exclusiveAsync({ timeoutMs: 1000 })).unlock();
  (await latch.sharedAsync({ timeoutMs: 0 })).unlock();
});

Deno.test("HybridLatch termination: an exclusive holder killed inside leaves the version odd for good", async () => {
  // Not robust, like the other latches: with the writer dead, optimistic
  // readers unwind and the forms with a timeout time out. read(fn),
  // optimisticOrSpin() and optimisticOrShared() without a timeout would wait
  // forever (read(fn) and optimisticOrSpin() take no timeout at all).
  const heap = SharedHeap.create();
  const latch = HybridLatch.create(heap);
  const holder = await holdElsewhere("hybrid-exclusive", latch.handle, heap);
  await holder.kill();
  assert.equal(latch.currentVersion() % 2, 1);
  assert.ok(isUnwind(thrown(() => latch.optimisticOrUnwind())));
  assert.throws(() => latch.optimisticOrShared({ timeoutMs: 20 }), TimeoutError);
  assert.throws(() => latch.exclusive({ timeoutMs: 20 }), TimeoutError);
  await assert.rejects(latch.sharedAsync({ timeoutMs: 20 }), TimeoutError);
  assert.equal(latch.tryShared(), undefined);
});

Deno.test("HybridLatch: attach refuses handles that do not name a HybridLatch", () => {
  const heap = SharedHeap.create();
  const latch = HybridLatch.create(heap);
  latch.exclusive().unlock();
  assert.equal(HybridLatch.attach(structuredClone(latch.handle)).currentVersion(), 2);
  const standalone = HybridLatch.create();
  assert.equal(HybridLatch.attach(standalone.handle).currentVersion(), 0);
  const bad = (handle: unknown) =>
    assert.throws(
      () => HybridLatch.attach(handle as SharedHandle<"sabre.HybridLatch">),
      HandleError,
    );
  bad(RwLock.create(heap).handle);
  bad(Mutex.create().handle);
  bad({ ...RwLock.create(heap).handle, kind: "sabre.HybridLatch" });
  bad({ ...standalone.handle, sab: new SharedArrayBuffer(64) });
  bad({ ...latch.handle, version: 3 });
  bad({ ...standalone.handle, offset: 64 });
  const { sab: _, ...truncated } = latch.handle;
  bad(truncated);
});

Deno.test("HybridLatch: destroy refuses while held and frees the heap block", () => {
  const heap = SharedHeap.create();
  const before = heap.stats().liveBlocks;
  const latch = HybridLatch.create(heap);
  const x = latch.exclusive();
  assert.throws(() => latch.destroy(), SabreError);
  x.unlock();
  const s = latch.shared();
  assert.throws(() => latch.destroy(), SabreError);
  s.unlock();
  latch.destroy();
  assert.equal(heap.stats().liveBlocks, before);
});

Deno.test("HybridLatch: optimistic waits and read(fn) have timeout and async forms", async () => {
  const heap = SharedHeap.create();
  const latch = HybridLatch.create(heap);
  const writer = await holdElsewhere("hybrid-exclusive", latch.handle, heap);
  try {
    const timeout = (e: unknown) => e instanceof TimeoutError;
    assert.throws(() => latch.optimisticOrSpin({ timeoutMs: 20 }), timeout);
    assert.throws(() => latch.read(() => 1, { timeoutMs: 20 }), timeout);
    await assert.rejects(latch.optimisticOrSpinAsync({ timeoutMs: 20 }), timeout);
    await assert.rejects(latch.readAsync(() => 1, { timeoutMs: 20 }), timeout);
    assert.throws(() => latch.read(() => 1, { timeoutMs: -1 }), RangeError);
    // The async forms resolve once the writer leaves.
    const waiting = latch.optimisticOrSpinAsync();
    const reading = latch.readAsync((g) => g.version);
    setTimeout(() => writer.releaseNow(), 20);
    const guard = await waiting;
    assert.equal(guard.version % 2, 0);
    assert.equal(await reading, guard.version);
  } finally {
    await writer.release();
  }
  assert.equal(latch.read((g) => g.version, { timeoutMs: 50 }), latch.currentVersion());
});

Deno.test("HybridLatch: destroy refuses while a woken writer has not yet entered", async () => {
  const heap = SharedHeap.create();
  const before = heap.stats().liveBlocks;
  const latch = HybridLatch.create(heap);
  const held = latch.exclusive();
  const waiting = latch.exclusiveAsync();
  held.unlock();
  // The waiter is woken but has not run yet: it still counts.
  assert.throws(() => latch.destroy(), (e) => e instanceof SabreError && /waiters/.test(e.message));
  (await waiting).unlock();
  latch.destroy();
  assert.equal(heap.stats().liveBlocks, before);
});

Deno.test("HybridLatch: versions wrap within Int32 across exclusive sections, and guards still validate", () => {
  const latch = HybridLatch.create();
  const words = new Int32Array(latch.handle.sab, latch.handle.offset, 2);
  for (const start of [0x7ffffffe, -2]) {
    Atomics.store(words, 1, start);
    const x = latch.exclusive();
    assert.equal(x.version, (start + 1) | 0);
    const after = x.unlock();
    assert.equal(after.version, (start + 2) | 0);
    assert.ok(after.isValid(), `the guard after ${start} + 2 should validate`);
    after.recheck();
    const up = latch.optimisticOrSpin().toExclusive();
    assert.equal(up.version, (start + 3) | 0);
    up.unlock().recheck();
  }
});

Deno.test("LatchWords: tryUpgrade from an odd version answers false; unlock of a free latch throws and changes nothing", () => {
  const words = new Int32Array(new SharedArrayBuffer(8));
  assert.ok(LatchWords.tryLock(words, 0));
  assert.equal(LatchWords.tryUpgrade(words, 0, 1), false, "upgraded from the holder's version");
  assert.ok(LatchWords.isLocked(words, 0));
  LatchWords.unlock(words, 0);
  assert.throws(
    () => LatchWords.unlock(words, 0),
    (e) => e instanceof SabreError && /not held: its version is 2/.test(e.message),
  );
  assert.equal(Atomics.load(words, 0), 2);
  assert.equal(LatchWords.isLocked(words, 0), false);
  // Across the Int32 wrap.
  Atomics.store(words, 0, 0x7ffffffe);
  assert.ok(LatchWords.tryUpgrade(words, 0, 0x7ffffffe));
  LatchWords.unlock(words, 0);
  assert.equal(Atomics.load(words, 0), -0x80000000);
  assert.ok(LatchWords.tryUpgrade(words, 0, -0x80000000));
  LatchWords.unlock(words, 0);
});

Deno.test("HybridLatch: toExclusive of an out-of-date guard unwinds at once, even while a reader is inside", () => {
  const latch = HybridLatch.create();
  const stale = latch.optimisticOrSpin();
  latch.exclusive().unlock(); // a writer intervenes
  const reader = latch.shared();
  // It would otherwise wait for the reader and time out.
  assert.throws(() => stale.toExclusive({ timeoutMs: 200 }), (e) => isUnwind(e));
  reader.unlock();
  assert.ok(latch.tryExclusive() !== undefined);
});
