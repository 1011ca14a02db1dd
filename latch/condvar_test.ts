import assert from "node:assert/strict";
import {
  HandleError,
  SabreError,
  type SharedHandle,
  SharedHeap,
  TimeoutError,
} from "../memory/mod.ts";
import { runWorkers, spawnWorkers } from "../testing/harness.ts";
import { Condvar, Mutex, RwLock } from "./mod.ts";
import {
  allocWords,
  type GateArgs,
  holdElsewhere,
  posted,
  type QueueArgs,
  queueWords,
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

// Word indices of the bounded buffer (see QueueArgs).
const COUNT = 1;
const CONSUMED = 2;
const RING = 3;

interface Queue {
  readonly args: Omit<QueueArgs, "producerWorkers" | "producers" | "waitWhile">;
  readonly mutex: Mutex;
  readonly notEmpty: Condvar;
  readonly notFull: Condvar;
}

function makeQueue(heap: SharedHeap | undefined, capacity: number, items: number): Queue {
  const mutex = Mutex.create(heap);
  const notEmpty = Condvar.create(heap);
  const notFull = Condvar.create(heap);
  const data = allocWords(heap, queueWords(capacity, items));
  return {
    mutex,
    notEmpty,
    notFull,
    args: {
      mutex: mutex.handle,
      notEmpty: notEmpty.handle,
      notFull: notFull.handle,
      data,
      capacity,
      items,
    },
  };
}

/** Every item consumed exactly once, and the sums agree. */
function checkQueue(queue: Queue, produced: number, consumed: number): void {
  const { capacity, items } = queue.args;
  const words = view(queue.args.data);
  const expected = (items * (items - 1)) / 2;
  assert.equal(produced, expected, "producers did not produce every item");
  assert.equal(consumed, expected, "the checksum of consumed items is off");
  assert.equal(words[CONSUMED], items);
  assert.equal(words[COUNT], 0);
  for (let item = 0; item < items; item++) {
    const times = words[RING + capacity + item];
    if (times !== 1) assert.fail(`item ${item} was consumed ${times} times`);
  }
  assert.equal(queue.notEmpty.waiters, 0);
  assert.equal(queue.notFull.waiters, 0);
  assert.ok(!queue.mutex.isLocked);
}

async function producerConsumer(
  producers: number,
  consumers: number,
  items: number,
  waitWhile: boolean,
  heap: SharedHeap | undefined,
): Promise<void> {
  const queue = makeQueue(heap, 8, items);
  const sums = await runWorkers<QueueArgs, number>({
    module: fixtures,
    fn: "produceOrConsume",
    workers: producers + consumers,
    heap,
    args: { ...queue.args, producers, producerWorkers: producers, waitWhile },
    timeoutMs: 120_000,
  });
  const produced = sums.slice(0, producers).reduce((a, b) => a + b, 0);
  const consumed = sums.slice(producers).reduce((a, b) => a + b, 0);
  checkQueue(queue, produced, consumed);
}

Deno.test("Condvar: 2 producers x 2 consumers on a bounded buffer; every item consumed once (heap)", async () => {
  await producerConsumer(2, 2, 20_000 * STRESS, false, SharedHeap.create());
});

Deno.test("Condvar: 4 producers x 4 consumers on 2 cores with waitWhile (standalone)", async () => {
  await producerConsumer(4, 4, 10_000 * STRESS, true, undefined);
});

Deno.test("Condvar: notifyAll wakes every waiter, sync and async", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const cv = Condvar.create(heap);
  const data = allocWords(heap, 1);
  const group = spawnWorkers<GateArgs, number>({
    module: fixtures,
    fn: "awaitGate",
    workers: 5,
    heap,
    args: (index) => ({ mutex: mutex.handle, cv: cv.handle, data, async: index >= 3 }),
    timeoutMs: 60_000,
  });
  try {
    await until(() => cv.waiters === 5, group);
    // One notifyAll must let all five through: notifyOne would strand four.
    mutex.withLock(() => {
      view(data)[0] = 42;
      cv.notifyAll();
    });
    assert.deepEqual(await group.results, [42, 42, 42, 42, 42]);
  } finally {
    await group.terminateAll();
  }
  assert.equal(cv.waiters, 0);
});

Deno.test("Condvar: waitAsync on the main thread consumes what worker producers make", async () => {
  const heap = SharedHeap.create();
  const items = 3_000 * STRESS;
  const queue = makeQueue(heap, 4, items);
  const { mutex, notEmpty, notFull } = queue;
  const words = view(queue.args.data);
  const gate = queueWords(4, items) - 1;
  const producers = spawnWorkers<QueueArgs, number>({
    module: fixtures,
    fn: "produceOnly",
    workers: 2,
    heap,
    args: { ...queue.args, producers: 2, producerWorkers: 2, waitWhile: false },
    timeoutMs: 120_000,
  });
  try {
    // The producers start from a timer, which can only fire while this
    // thread is parked in waitWhileAsync: the first item proves the event
    // loop kept running.
    let timerFired = false;
    setTimeout(() => {
      timerFired = true;
      Atomics.store(words, gate, 1);
      Atomics.notify(words, gate);
    }, 10);
    let consumed = 0;
    await mutex.acquireAsync();
    for (;;) {
      await notEmpty.waitWhileAsync(mutex, () => words[COUNT] === 0);
      assert.ok(timerFired);
      const head = words[0];
      const item = words[RING + head];
      words[0] = (head + 1) % 4;
      words[COUNT]--;
      words[CONSUMED]++;
      words[RING + 4 + item]++;
      consumed += item;
      notFull.notifyOne();
      if (words[CONSUMED] === items) break;
      if (words[CONSUMED] % 16 === 0) {
        // Let the producers in now and then even when items are waiting.
        mutex.release();
        await mutex.acquireAsync();
      }
    }
    mutex.release();
    const sums = await producers.results;
    checkQueue(queue, sums[0] + sums[1], consumed);
  } finally {
    await producers.terminateAll();
  }
});

Deno.test("Condvar: wait and waitAsync time out holding the mutex; waitWhile checks first", async () => {
  const mutex = Mutex.create();
  const cv = Condvar.create();
  mutex.acquire();
  const error = thrown(() => cv.wait(mutex, { timeoutMs: 30 }));
  assert.ok(error instanceof TimeoutError && error.timeoutMs === 30);
  assert.match(error.message, /wait on Condvar/);
  assert.ok(mutex.isLocked, "wait did not take the mutex back");
  assert.throws(() => cv.wait(mutex, { timeoutMs: 0 }), TimeoutError);
  await assert.rejects(cv.waitAsync(mutex, { timeoutMs: 20 }), TimeoutError);
  assert.ok(mutex.isLocked);
  assert.throws(() => cv.waitWhile(mutex, () => true, { timeoutMs: 20 }), TimeoutError);
  await assert.rejects(cv.waitWhileAsync(mutex, () => true, { timeoutMs: 0 }), TimeoutError);
  // A false condition returns at once, even with no time at all.
  cv.waitWhile(mutex, () => false, { timeoutMs: 0 });
  await cv.waitWhileAsync(mutex, () => false, { timeoutMs: 0 });
  assert.equal(cv.waiters, 0);
  mutex.release();
});

Deno.test("Condvar: a timed-out wait takes the mutex back only once a worker holding it lets go", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const cv = Condvar.create(heap);
  mutex.acquire();
  // The holder gets the mutex while this thread waits on the condvar.
  const pendingHolder = holdElsewhere("mutex", mutex.handle, heap);
  const waiting = cv.waitAsync(mutex, { timeoutMs: 50 });
  const holder = await pendingHolder;
  let settled = false;
  const outcome = waiting.then(() => "notified", (e) => e).finally(() => (settled = true));
  await sleep(100); // the wait timed out by now, but the mutex is the holder's
  assert.ok(!settled, "waitAsync settled without the mutex");
  await holder.release();
  assert.ok((await outcome) instanceof TimeoutError);
  assert.ok(mutex.isLocked);
  mutex.release();
});

Deno.test("Condvar: bad arguments are refused and leave no phantom waiter", async () => {
  const mutex = Mutex.create();
  const cv = Condvar.create();
  for (const notMutex of [RwLock.create(), {}, undefined, "mutex"]) {
    const named = (e: unknown) => e instanceof TypeError && /'mutex'/.test(e.message);
    assert.throws(() => cv.wait(notMutex as Mutex), named);
    await assert.rejects(cv.waitAsync(notMutex as Mutex), named);
  }
  for (const timeoutMs of [-1, NaN, "5"]) {
    const options = { timeoutMs } as unknown as { timeoutMs: number };
    const named = (e: unknown) =>
      e instanceof (typeof timeoutMs === "number" ? RangeError : TypeError) &&
      /'timeoutMs'/.test(e.message);
    mutex.acquire();
    assert.throws(() => cv.wait(mutex, options), named);
    await assert.rejects(cv.waitAsync(mutex, options), named);
    assert.throws(() => cv.waitWhile(mutex, () => true, options), named);
    await assert.rejects(cv.waitWhileAsync(mutex, () => true, options), named);
    assert.ok(mutex.isLocked);
    mutex.release();
  }
  // Waiting without holding the mutex is an error, and not a lasting one.
  const unheld = (e: unknown) =>
    e instanceof SabreError && /wait on Condvar as its mutex is not locked/.test(e.message);
  assert.throws(() => cv.wait(mutex, { timeoutMs: 5 }), unheld);
  await assert.rejects(cv.waitAsync(mutex, { timeoutMs: 5 }), unheld);
  assert.equal(cv.waiters, 0, "a failed wait is still counted as a waiter");
  cv.destroy();
});

Deno.test("Condvar termination: a waiter killed in waitAsync does not stop the others", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const cv = Condvar.create(heap);
  const doomed = spawnWorkers<WaitAsyncArgs, string>({
    module: fixtures,
    fn: "waitAsyncAndDie",
    workers: 1,
    heap,
    args: { kind: "condvar", handle: cv.handle, mutex: mutex.handle },
  });
  await posted(doomed);
  await doomed.terminate(0);
  // It died parked, after it released the mutex: the mutex is free, but the
  // dead waiter stays counted (so destroy() refuses for good).
  assert.ok(!mutex.isLocked);
  assert.equal(cv.waiters, 1);
  assert.throws(() => cv.destroy(), SabreError);
  // Other waiters and notifiers carry on.
  const data = allocWords(heap, 1);
  const group = spawnWorkers<GateArgs, number>({
    module: fixtures,
    fn: "awaitGate",
    workers: 2,
    heap,
    args: { mutex: mutex.handle, cv: cv.handle, data, async: false },
  });
  await until(() => cv.waiters === 3, group);
  mutex.withLock(() => {
    view(data)[0] = 9;
    cv.notifyAll();
  });
  assert.deepEqual(await group.results, [9, 9]);
  assert.equal(cv.waiters, 1);
});

Deno.test("Condvar: attach refuses handles that do not name a Condvar", () => {
  const heap = SharedHeap.create();
  const cv = Condvar.create(heap);
  const bad = (handle: unknown) =>
    assert.throws(() => Condvar.attach(handle as SharedHandle<"sabre.Condvar">), HandleError);
  assert.equal(Condvar.attach(structuredClone(cv.handle)).waiters, 0);
  assert.equal(Condvar.attach(Condvar.create().handle).waiters, 0);
  bad(Mutex.create(heap).handle);
  bad({ ...Mutex.create(heap).handle, kind: "sabre.Condvar" });
  bad({ ...Condvar.create().handle, sab: new SharedArrayBuffer(64) });
  bad({ ...cv.handle, version: 99 });
  bad({ ...cv.handle, offset: undefined });
  const handle = cv.handle;
  cv.destroy();
  bad(handle);
});
