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
import { assertLinearizable, counterModel } from "../testing/linearizability.ts";
import { Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard } from "./mod.ts";
import {
  allocWords,
  type CountArgs,
  type CountResult,
  holdElsewhere,
  type PairsArgs,
  posted,
  type RoundsArgs,
  type StarveArgs,
  type TryForeverArgs,
  until,
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

/** Writers announced as waiting in the lock's state word (white-box, for the tests only). */
function writersWaiting(lock: RwLock): number {
  const { sab, offset } = lock.handle;
  return (Atomics.load(new Int32Array(sab, offset, 2), 1) >>> 20) & 0x7ff;
}

/** Readers announced as waiting (white-box, for the tests only). */
function readersWaiting(lock: RwLock): number {
  const { sab, offset } = lock.handle;
  return Atomics.load(new Int32Array(sab, offset, 3), 2);
}

async function countTest(workers: number, iterations: number, inHeap: boolean): Promise<void> {
  const heap = inHeap ? SharedHeap.create() : undefined;
  const lock = RwLock.create(heap);
  const data = allocWords(heap, 4);
  const results = await runWorkers<CountArgs, CountResult>({
    module: fixtures,
    fn: "countRwLock",
    workers,
    heap,
    args: { handle: lock.handle, data, iterations },
    timeoutMs: 120_000,
  });
  const increments = results.reduce((n, r) => n + r.increments, 0);
  assert.ok(increments > 0);
  assert.equal(view(data)[0], increments, "an increment was lost");
  assert.equal(results.reduce((n, r) => n + r.violations, 0), 0, "a writer was not alone");
  assert.ok(results.reduce((n, r) => n + r.reads, 0) > 0);
  assert.equal(lock.readers, 0);
  assert.ok(!lock.isWriteLocked);
  assert.equal(writersWaiting(lock), 0, "a waiting writer is still counted");
  const forms = new Set(results.flatMap((r) => Object.keys(r.forms)));
  for (const form of ["acquireWrite", "writeGuard", "withWrite", "tryWrite", "downgrade", "read"]) {
    assert.ok(forms.has(form), `form ${form} was never used`);
  }
}

Deno.test("RwLock: 4 workers of plain increments under write, mixed with reads, lose none (heap)", async () => {
  await countTest(4, 60_000 * STRESS, true);
});

Deno.test("RwLock: 8 workers on 2 cores, every form mixed, lose nothing (standalone)", async () => {
  await countTest(8, 20_000 * STRESS, false);
});

Deno.test("RwLock: readers under the read lock always see x === y written under the write lock", async () => {
  const heap = SharedHeap.create();
  const lock = RwLock.create(heap);
  const data = allocWords(heap, 4);
  const iterations = 20_000 * STRESS;
  const bad = await runWorkers<PairsArgs, number>({
    module: fixtures,
    fn: "rwPairs",
    workers: 6,
    heap,
    args: { lock: lock.handle, data, writers: 2, iterations },
    timeoutMs: 120_000,
  });
  assert.deepEqual(bad, [0, 0, 0, 0, 0, 0]);
  assert.equal(view(data)[0], 2 * iterations);
  assert.equal(view(data)[1], 2 * iterations);
});

async function starvationTest(finite: "writer" | "reader", finiteWorkers: number): Promise<void> {
  const lock = RwLock.create();
  const data = allocWords(undefined, 5);
  const acquisitions = 1_000 * STRESS;
  const results = await runWorkers<StarveArgs, { done: number; bad: number }>({
    module: fixtures,
    fn: "starve",
    workers: finiteWorkers + 4,
    args: { lock: lock.handle, data, finite, finiteWorkers, acquisitions },
    // Starvation shows up as this timeout; nothing else bounds the run.
    timeoutMs: 60_000,
  });
  for (let i = 0; i < finiteWorkers; i++) assert.equal(results[i].done, acquisitions);
  assert.equal(results.reduce((n, r) => n + r.bad, 0), 0);
}

Deno.test("RwLock: a writer is not starved by 4 readers hammering the read lock", async () => {
  await starvationTest("writer", 1);
});

Deno.test("RwLock: readers are not starved by 4 writers hammering the write lock", async () => {
  await starvationTest("reader", 2);
});

Deno.test("RwLock: guards release with using; double and unmatched releases throw", () => {
  const lock = RwLock.create();
  {
    using read = lock.read();
    using again = lock.read();
    assert.ok(read instanceof RwLockReadGuard && read.held && again.held);
    assert.equal(lock.readers, 2);
    assert.equal(lock.tryWrite(), undefined);
  }
  assert.equal(lock.readers, 0);
  {
    using write = lock.write();
    assert.ok(write instanceof RwLockWriteGuard && lock.isWriteLocked);
    assert.equal(lock.tryRead(), undefined);
    assert.equal(lock.tryWrite(), undefined);
  }
  assert.ok(!lock.isWriteLocked);
  const read = lock.read();
  read.unlock();
  assert.throws(() => read.unlock(), SabreError);
  const write = lock.write();
  write.unlock();
  assert.throws(() => write.unlock(), SabreError);
  assert.throws(() => write.downgrade(), SabreError);
  assert.throws(() => lock.releaseRead(), SabreError);
  assert.throws(() => lock.releaseWrite(), SabreError);
  assert.throws(() => lock.downgradeWrite(), SabreError);
  // The failed releases left the state as it was.
  assert.equal(lock.readers, 0);
  assert.ok(!lock.isWriteLocked);
  lock.write({ timeoutMs: 0 }).unlock();
  assert.throws(() => lock.withWrite(() => assert.fail("boom")), /boom/);
  assert.throws(() => lock.withRead(() => assert.fail("boom")), /boom/);
  assert.ok(lock.tryWrite() !== undefined, "withRead/withWrite leaked the lock");
});

Deno.test("RwLock: downgrade lets waiting readers in but no writer between", async () => {
  const heap = SharedHeap.create();
  const lock = RwLock.create(heap);
  const data = allocWords(heap, 4);
  const words = view(data);
  // A writer waits while this thread holds the write lock.
  const write = lock.write();
  const writer = spawnWorkers<PairsArgs, number>({
    module: fixtures,
    fn: "rwPairs",
    workers: 1,
    heap,
    args: { lock: lock.handle, data, writers: 1, iterations: 1 },
  });
  await until(() => writersWaiting(lock) === 1, writer);
  words[0] = words[1] = 100;
  const read = write.downgrade();
  assert.ok(!write.held && read.held && lock.readers === 1 && !lock.isWriteLocked);
  // Readers that arrive now queue behind the waiting writer.
  assert.equal(lock.tryRead(), undefined);
  const readers = spawnWorkers<PairsArgs, number>({
    module: fixtures,
    fn: "rwPairs",
    workers: 2,
    heap,
    args: { lock: lock.handle, data, writers: 0, iterations: 1 },
  });
  await sleep(50);
  assert.equal(words[0], 100, "a writer got in after the downgrade");
  read.unlock();
  assert.deepEqual(await writer.results, [0]);
  assert.deepEqual(await readers.results, [0, 0]);
  assert.equal(words[0], 101);

  // Readers parked while the write lock is held enter on downgrade, before it is released.
  const write2 = lock.write();
  const parkedReaders = spawnWorkers<PairsArgs, number>({
    module: fixtures,
    fn: "rwPairs",
    workers: 3,
    heap,
    args: { lock: lock.handle, data, writers: 0, iterations: 1 },
  });
  await until(() => readersWaiting(lock) === 3, parkedReaders);
  const read2 = write2.downgrade();
  assert.deepEqual(await parkedReaders.results, [0, 0, 0]);
  read2.unlock();
});

Deno.test("RwLock: try forms against a worker holding the write lock, then the read lock", async () => {
  const lock = RwLock.create();
  const writer = await holdElsewhere("rwlock-write", lock.handle);
  try {
    assert.ok(lock.isWriteLocked);
    assert.equal(lock.tryRead(), undefined);
    assert.equal(lock.tryWrite(), undefined);
    assert.equal(lock.tryAcquireRead(), false);
    assert.equal(lock.tryAcquireWrite(), false);
  } finally {
    await writer.release();
  }
  const reader = await holdElsewhere("rwlock-read", lock.handle);
  try {
    assert.equal(lock.readers, 1);
    const shared = lock.tryRead();
    assert.ok(shared !== undefined, "readers share");
    shared.unlock();
    assert.equal(lock.tryWrite(), undefined);
  } finally {
    await reader.release();
  }
  const write = lock.tryWrite();
  assert.ok(write !== undefined);
  write.unlock();
});

Deno.test("RwLock: timeoutMs throws TimeoutError while a worker holds it; waiter counts stay right", async () => {
  const heap = SharedHeap.create();
  const lock = RwLock.create(heap);
  const writer = await holdElsewhere("rwlock-write", lock.handle, heap);
  try {
    const error = thrown(() => lock.read({ timeoutMs: 30 }));
    assert.ok(error instanceof TimeoutError && error.timeoutMs === 30);
    assert.match(error.message, /read-lock RwLock/);
    assert.throws(() => lock.write({ timeoutMs: 30 }), /write-lock RwLock/);
    assert.throws(() => lock.read({ timeoutMs: 0 }), TimeoutError);
    assert.throws(() => lock.write({ timeoutMs: 0 }), TimeoutError);
    assert.throws(() => lock.withRead(() => assert.fail("ran"), { timeoutMs: 5 }), TimeoutError);
    assert.throws(() => lock.withWrite(() => assert.fail("ran"), { timeoutMs: 5 }), TimeoutError);
    assert.equal(writersWaiting(lock), 0, "a timed-out writer is still counted");
  } finally {
    await writer.release();
  }
  lock.read({ timeoutMs: 0 }).unlock();
  lock.write({ timeoutMs: 0 }).unlock();

  const reader = await holdElsewhere("rwlock-read", lock.handle, heap);
  try {
    assert.throws(() => lock.write({ timeoutMs: 30 }), TimeoutError);
    // The writer withdrew, so readers are not held back for it.
    assert.equal(writersWaiting(lock), 0);
    const shared = lock.read({ timeoutMs: 0 });
    shared.unlock();
  } finally {
    await reader.release();
  }
  lock.write({ timeoutMs: 1000 }).unlock();
  assert.equal(lock.readers, 0);
});

Deno.test("RwLock: an invalid timeoutMs is a RangeError naming it", async () => {
  const lock = RwLock.create();
  for (const timeoutMs of [-1, NaN, "5", -0.5]) {
    const options = { timeoutMs } as unknown as { timeoutMs: number };
    const named = (e: unknown) =>
      e instanceof (typeof timeoutMs === "number" ? RangeError : TypeError) &&
      /'timeoutMs'/.test(e.message);
    assert.throws(() => lock.read(options), named);
    assert.throws(() => lock.write(options), named);
    assert.throws(() => lock.withRead(() => 0, options), named);
    assert.throws(() => lock.withWrite(() => 0, options), named);
    await assert.rejects(lock.readAsync(options), named);
    await assert.rejects(lock.writeAsync(options), named);
  }
  assert.equal(lock.readers, 0);
  assert.ok(!lock.isWriteLocked);
});

Deno.test("RwLock: readAsync and writeAsync on the main thread resolve on release, the event loop running", async () => {
  const heap = SharedHeap.create();
  const lock = RwLock.create(heap);
  for (const form of ["read", "write"] as const) {
    const holder = await holdElsewhere("rwlock-write", lock.handle, heap);
    let timerFired = false;
    const pending = form === "read" ? lock.readAsync() : lock.writeAsync();
    setTimeout(() => {
      timerFired = true;
      holder.releaseNow();
    }, 20);
    const guard = await pending;
    assert.ok(timerFired, `${form}Async resolved before the holder let go`);
    assert.ok(form === "read" ? lock.readers === 1 : lock.isWriteLocked);
    guard.unlock();
    await holder.release();
  }
  const holder = await holdElsewhere("rwlock-write", lock.handle, heap);
  try {
    await assert.rejects(lock.readAsync({ timeoutMs: 25 }), TimeoutError);
    await assert.rejects(lock.writeAsync({ timeoutMs: 25 }), TimeoutError);
    await assert.rejects(lock.acquireReadAsync({ timeoutMs: 0 }), TimeoutError);
    await assert.rejects(lock.acquireWriteAsync({ timeoutMs: 0 }), TimeoutError);
    assert.equal(writersWaiting(lock), 0);
  } finally {
    await holder.release();
  }
  (await lock.writeAsync({ timeoutMs: 1000 })).unlock();
  (await lock.readAsync({ timeoutMs: 1000 })).unlock();
});

Deno.test("RwLock termination: a killed holder leaves the others timing out, not hanging", async () => {
  const lock = RwLock.create();
  // Killed holding the read lock: writers time out, readers still share.
  const reader = await holdElsewhere("rwlock-read", lock.handle);
  const writers = spawnWorkers<TryForeverArgs, number>({
    module: fixtures,
    fn: "tryForever",
    workers: 2,
    args: { kind: "rwlock-write", handle: lock.handle, timeoutMs: 20 },
  });
  try {
    await reader.kill();
    await posted(writers, 6);
    assert.equal(lock.readers, 1);
    assert.throws(() => lock.write({ timeoutMs: 20 }), TimeoutError);
  } finally {
    await writers.terminateAll();
  }
  // The writers were stopped between attempts, withdrawn: readers share again.
  assert.equal(writersWaiting(lock), 0);
  lock.read({ timeoutMs: 1000 }).unlock();
  lock.releaseRead(); // on the dead reader's behalf
  lock.write({ timeoutMs: 1000 }).unlock();

  // Killed holding the write lock: everyone times out.
  const writer = await holdElsewhere("rwlock-write", lock.handle);
  await writer.kill();
  assert.throws(() => lock.read({ timeoutMs: 20 }), TimeoutError);
  assert.throws(() => lock.write({ timeoutMs: 20 }), TimeoutError);
  await assert.rejects(lock.readAsync({ timeoutMs: 20 }), TimeoutError);
  lock.releaseWrite();
  lock.read({ timeoutMs: 1000 }).unlock();
});

Deno.test("RwLock termination: readers killed while waiting do not break the lock", async () => {
  const heap = SharedHeap.create();
  const lock = RwLock.create(heap);
  const write = lock.write();
  const parked = spawnWorkers<WaitAsyncArgs, string>({
    module: fixtures,
    fn: "waitAsyncAndDie",
    workers: 2,
    heap,
    args: { kind: "rwlock-read", handle: lock.handle },
  });
  const timed = spawnWorkers<TryForeverArgs, number>({
    module: fixtures,
    fn: "tryForever",
    workers: 1,
    heap,
    args: { kind: "rwlock-read", handle: lock.handle, timeoutMs: 10 },
  });
  await Promise.all([posted(parked, 2), posted(timed)]);
  await parked.terminateAll();
  await timed.terminateAll();
  write.unlock();
  // Their announcements may linger (costing a wake-up call), but readers
  // and writers both get in, alone or together.
  lock.read({ timeoutMs: 1000 }).unlock();
  lock.write({ timeoutMs: 1000 }).unlock();
  const data = allocWords(heap, 4);
  const bad = await runWorkers<PairsArgs, number>({
    module: fixtures,
    fn: "rwPairs",
    workers: 4,
    heap,
    args: { lock: lock.handle, data, writers: 2, iterations: 2_000 },
    timeoutMs: 60_000,
  });
  assert.deepEqual(bad, [0, 0, 0, 0]);
  assert.equal(view(data)[0], 4_000);
});

/** Writers that readers take for dead (white-box, for the tests only). */
function staleWriters(lock: RwLock): number {
  const { sab, offset } = lock.handle;
  return Atomics.load(new Int32Array(sab, offset, 6), 5) & 0xffff;
}

/**
 * A lock, free, with one writer announced that died waiting in writeAsync
 * (killed there) and never withdrew.
 */
async function lockWithDeadWriter(): Promise<{ heap: SharedHeap; lock: RwLock }> {
  const heap = SharedHeap.create();
  const lock = RwLock.create(heap);
  const write = lock.write();
  const doomed = spawnWorkers<WaitAsyncArgs, string>({
    module: fixtures,
    fn: "waitAsyncAndDie",
    workers: 1,
    heap,
    args: { kind: "rwlock-write", handle: lock.handle },
  });
  await posted(doomed);
  await doomed.terminate(0);
  assert.deepEqual(await doomed.results, [undefined]);
  write.unlock();
  assert.equal(writersWaiting(lock), 1, "the dead writer is still announced");
  assert.equal(staleWriters(lock), 0);
  return { heap, lock };
}

/** After the dead writer was taken for dead: everybody enters at once, and a live writer still counts. */
async function checkAfterDeadWriter(lock: RwLock): Promise<void> {
  assert.equal(staleWriters(lock), 1);
  assert.equal(writersWaiting(lock), 1, "the count stays, taken for dead");
  const read = lock.tryRead();
  assert.ok(read !== undefined, "a reader enters at once");
  read.unlock();
  const write = lock.tryWrite();
  assert.ok(write !== undefined, "a writer enters at once");
  write.unlock();
  lock.write({ timeoutMs: 1000 }).unlock(); // the blocking form without spinning on the dead count
  // A live writer still holds new readers back until it is done.
  const inside = lock.read();
  const waiting = lock.writeAsync({ timeoutMs: 10_000 });
  assert.equal(writersWaiting(lock), 2);
  assert.equal(lock.tryRead(), undefined, "new readers defer to the live writer");
  inside.unlock(); // the last reader out wakes the live writer
  (await waiting).unlock();
  assert.equal(writersWaiting(lock), 1);
  const after = lock.tryRead();
  assert.ok(after !== undefined);
  after.unlock();
  lock.destroy(); // idle: only the dead writer is counted
}

Deno.test("RwLock termination: a writer killed while waiting holds readers back until a reader has seen the lock free and nothing moving for a second (blocking read)", async () => {
  const { lock } = await lockWithDeadWriter();
  // Until then, new readers wait for it.
  assert.equal(lock.tryRead(), undefined);
  assert.throws(() => lock.read({ timeoutMs: 30 }), TimeoutError);
  assert.equal(staleWriters(lock), 0, "a reader that timed out takes nobody for dead");
  const read = lock.read({ timeoutMs: 10_000 });
  read.unlock();
  await checkAfterDeadWriter(lock);
});

Deno.test("RwLock termination: a writer killed while waiting is taken for dead by readAsync too, and readers parked behind it all get in", async () => {
  const { heap, lock } = await lockWithDeadWriter();
  await assert.rejects(lock.readAsync({ timeoutMs: 30 }), TimeoutError);
  // Two workers park behind the dead writer; this thread waits asynchronously.
  const readers = spawnWorkers<PairsArgs, number>({
    module: fixtures,
    fn: "rwPairs",
    workers: 2,
    heap,
    args: { lock: lock.handle, data: allocWords(heap, 4), writers: 0, iterations: 1 },
  });
  await until(() => readersWaiting(lock) === 2, readers);
  const read = await lock.readAsync({ timeoutMs: 10_000 });
  read.unlock();
  assert.deepEqual(await readers.results, [0, 0]);
  await checkAfterDeadWriter(lock);
});

Deno.test("RwLock: a writer taken for dead that enters after all lowers the count, so that the next live writer holds readers back again", async () => {
  // White-box: as if two announced writers were taken for dead and one of
  // them, alive after all (it had not run for a second), then entered.
  const lock = RwLock.create();
  const { sab, offset } = lock.handle;
  const words = new Int32Array(sab, offset, 6);
  Atomics.add(words, 1, 1 << 20); // one writer announced, never to withdraw
  Atomics.store(words, 5, 2); // two taken for dead
  const read = lock.tryRead();
  assert.ok(read !== undefined);
  assert.equal(staleWriters(lock), 1, "the reader lowered the count to the writers announced");
  const waiting = lock.writeAsync({ timeoutMs: 10_000 });
  assert.equal(lock.tryRead(), undefined, "new readers defer to the live writer");
  read.unlock();
  (await waiting).unlock();
  const after = lock.tryRead();
  assert.ok(after !== undefined);
  after.unlock();
});

Deno.test("RwLock: a live writer taken for dead takes itself off the count when it runs again, and holds new readers back again", async () => {
  const lock = RwLock.create();
  const inside = lock.read();
  // This thread's own async writer announces itself, then cannot run while
  // the thread blocks below: to a reader, it looks dead.
  const waiting = lock.writeAsync({ timeoutMs: 20_000 });
  assert.equal(writersWaiting(lock), 1);
  inside.unlock(); // wakes the writer, which cannot run yet
  const read = lock.read({ timeoutMs: 10_000 }); // parks a second, then takes it for dead
  assert.equal(staleWriters(lock), 1, "the reader took the writer for dead");
  assert.equal(writersWaiting(lock), 1);
  // Let the writer run: it finds the reader inside, and parks again.
  for (let polls = 0; polls < 2_000 && staleWriters(lock) !== 0; polls++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(staleWriters(lock), 0, "the writer took itself off the count");
  assert.equal(lock.tryRead(), undefined, "new readers defer to the writer again");
  assert.equal(lock.tryWrite(), undefined, "and so do barging writers");
  read.unlock(); // the last reader out wakes the writer
  (await waiting).unlock();
  assert.ok(lock.isIdle);
  assert.equal(staleWriters(lock), 0);
});

Deno.test("RwLock: histories of an RwLock-protected counter are linearizable", async () => {
  const heap = SharedHeap.create();
  const lock = RwLock.create(heap);
  const rounds = 60 * STRESS;
  const data = allocWords(heap, rounds);
  const clock = HistoryClock.create();
  const perWorker = await runWorkers<RoundsArgs, OpRecord[][]>({
    module: fixtures,
    fn: "rwCounterRounds",
    workers: 4,
    heap,
    args: { lock: lock.handle, data, rounds, opsPerRound: 8, clock: clock.handle },
    timeoutMs: 120_000,
  });
  for (let round = 0; round < rounds; round++) {
    const history = mergeHistories(perWorker.map((histories) => histories[round]));
    assert.equal(history.length, 32);
    assertLinearizable(history, counterModel(0), { timeoutMs: 10_000 });
  }
});

Deno.test("RwLock: attach refuses handles that do not name an RwLock", () => {
  const heap = SharedHeap.create();
  const inHeap = RwLock.create(heap);
  const standalone = RwLock.create();
  const bad = (handle: unknown) =>
    assert.throws(() => RwLock.attach(handle as SharedHandle<"sabre.RwLock">), HandleError);
  RwLock.attach(structuredClone(inHeap.handle)).read().unlock();
  RwLock.attach(structuredClone(standalone.handle)).write().unlock();
  bad(Mutex.create(heap).handle);
  bad(Mutex.create().handle);
  bad({ ...Mutex.create(heap).handle, kind: "sabre.RwLock" }); // tag mismatch
  bad({ ...standalone.handle, sab: new SharedArrayBuffer(64) });
  bad({ kind: "sabre.RwLock", version: 1, sab: standalone.handle.sab });
  bad({ ...inHeap.handle, version: 3 });
  bad({ ...standalone.handle, version: 3 });
  bad({ ...standalone.handle, offset: 64 });
  bad(null);
});

Deno.test("RwLock: destroy refuses while held and frees the heap block", () => {
  const heap = SharedHeap.create();
  const before = heap.stats().liveBlocks;
  const lock = RwLock.create(heap);
  const read = lock.read();
  assert.throws(() => lock.destroy(), SabreError);
  read.unlock();
  const handle = lock.handle;
  lock.destroy();
  assert.equal(heap.stats().liveBlocks, before);
  assert.throws(() => RwLock.attach(handle), HandleError);
});

Deno.test("RwLock: a reader past the count's 2^20 - 1 is refused on every path and never lets a writer in", async () => {
  const lock = RwLock.create();
  const full = (1 << 20) - 1;
  for (let i = 0; i < full; i++) lock.acquireRead();
  assert.equal(lock.readers, full);
  const tooMany = (e: unknown) =>
    e instanceof SabreError && /1048575 readers already/.test(e.message);
  assert.throws(() => lock.acquireRead(), tooMany);
  assert.throws(() => lock.acquireRead({ timeoutMs: 10 }), tooMany);
  assert.throws(() => lock.tryAcquireRead(), tooMany);
  assert.throws(() => lock.tryRead(), tooMany);
  assert.throws(() => lock.read(), tooMany);
  await assert.rejects(lock.readAsync(), tooMany);
  assert.equal(lock.readers, full);
  assert.equal(lock.isWriteLocked, false);
  assert.equal(lock.tryAcquireWrite(), false);
  for (let i = 0; i < full; i++) lock.releaseRead();
  assert.equal(lock.readers, 0);
  assert.equal(lock.tryAcquireWrite(), true);
  lock.releaseWrite();
});

Deno.test("RwLock: 2,100 writers waiting at once (more than the 2,047 the state word counts) all get in, one at a time, and leave the lock free", async () => {
  const lock = RwLock.create();
  const reader = lock.read();
  let inside = 0;
  let most = 0;
  let entered = 0;
  const writers = Array.from({ length: 2100 }, async () => {
    await lock.acquireWriteAsync({ timeoutMs: 60_000 });
    inside++;
    most = Math.max(most, inside);
    await Promise.resolve();
    inside--;
    entered++;
    lock.releaseWrite();
  });
  await sleep(20);
  // The field is full: a sync writer waits unannounced and times out,
  // leaving the counts as they were.
  assert.throws(() => lock.acquireWrite({ timeoutMs: 30 }), TimeoutError);
  assert.equal(lock.isWriteLocked, false, "a waiting writer's count carried into WRITER");
  assert.equal(lock.tryAcquireRead(), false, "writers wait: new readers must wait too");
  reader.unlock();
  await Promise.all(writers);
  assert.equal(entered, 2100);
  assert.equal(most, 1);
  assert.equal(lock.isWriteLocked, false);
  assert.equal(lock.readers, 0);
  assert.equal(lock.tryAcquireWrite(), true, "the lock was left with writers counted");
  lock.releaseWrite();
});

Deno.test("RwLock: a spent write guard names the operation that found it spent", () => {
  const lock = RwLock.create();
  const write = lock.write();
  write.downgrade().unlock();
  assert.throws(() => write.downgrade(), /Cannot downgrade RwLock as this write guard/);
  assert.throws(() => write.unlock(), /Cannot unlock RwLock as this write guard/);
  assert.ok(lock.isIdle);
});
