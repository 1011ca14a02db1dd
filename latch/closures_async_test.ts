/**
 * The async closure forms: Mutex.withLockAsync, RwLock.withReadAsync and
 * withWriteAsync, HybridLatch.writeAsync. They hold the lock across the
 * awaits of an async fn, release it however fn ends, and do not run fn when
 * the wait times out.
 */

import assert from "node:assert/strict";
import { HybridLatch, Mutex, RwLock, SeqCell, SeqLock, TimeoutError } from "../mod.ts";

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

/** An exclusive closure form of one lock, and a way to hold that lock from outside. */
const EXCLUSIVE = [
  {
    name: "Mutex.withLockAsync",
    make: () => {
      const mutex = Mutex.create();
      return {
        run: <T>(fn: () => Promise<T> | T, timeoutMs?: number) =>
          mutex.withLockAsync(fn, timeoutMs === undefined ? undefined : { timeoutMs }),
        hold: () => mutex.acquire(),
        letGo: () => mutex.release(),
        held: () => mutex.isLocked,
      };
    },
  },
  {
    name: "RwLock.withWriteAsync",
    make: () => {
      const lock = RwLock.create();
      return {
        run: <T>(fn: () => Promise<T> | T, timeoutMs?: number) =>
          lock.withWriteAsync(fn, timeoutMs === undefined ? undefined : { timeoutMs }),
        hold: () => lock.acquireRead(),
        letGo: () => lock.releaseRead(),
        held: () => !lock.isIdle,
      };
    },
  },
  {
    name: "HybridLatch.writeAsync",
    make: () => {
      const latch = HybridLatch.create();
      let shared: { unlock(): void } | undefined;
      return {
        run: <T>(fn: () => Promise<T> | T, timeoutMs?: number) =>
          latch.writeAsync(fn, timeoutMs === undefined ? undefined : { timeoutMs }),
        hold: () => {
          shared = latch.shared();
        },
        letGo: () => shared!.unlock(),
        held: () => !latch.lock.isIdle,
      };
    },
  },
];

for (const form of EXCLUSIVE) {
  Deno.test(`${form.name}: one task at a time, across the awaits of an async fn`, async () => {
    const lock = form.make();
    let inside = 0, most = 0, done = 0;
    await Promise.all(Array.from({ length: 6 }, () =>
      lock.run(async () => {
        inside++;
        most = Math.max(most, inside);
        await tick();
        await tick();
        inside--;
        done++;
      })));
    assert.equal(most, 1);
    assert.equal(done, 6);
    assert.equal(lock.held(), false);
  });

  Deno.test(`${form.name}: releases when fn throws or rejects, and passes the error on`, async () => {
    const lock = form.make();
    await assert.rejects(
      lock.run(() => {
        throw new Error("sync failure");
      }),
      /sync failure/,
    );
    assert.equal(lock.held(), false);
    await assert.rejects(
      lock.run(async () => {
        await tick();
        throw new Error("async failure");
      }),
      /async failure/,
    );
    assert.equal(lock.held(), false);
    assert.equal(await lock.run(() => 5), 5);
  });

  Deno.test(`${form.name}: a timeout rejects with TimeoutError and does not run fn`, async () => {
    const lock = form.make();
    lock.hold();
    let ran = false;
    await assert.rejects(
      lock.run(() => {
        ran = true;
      }, 20),
      (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 20,
    );
    assert.equal(ran, false);
    lock.letGo();
    // The lock is whole: the next run gets it.
    assert.equal(await lock.run(() => "after", 1_000), "after");
  });
}

Deno.test("RwLock.withReadAsync: readers share across their awaits; a writer waits for them", async () => {
  const lock = RwLock.create();
  let readers = 0, most = 0;
  const order: string[] = [];
  const read = () =>
    lock.withReadAsync(async () => {
      readers++;
      most = Math.max(most, readers);
      await tick();
      await tick();
      readers--;
      order.push("read");
    });
  const reads = [read(), read(), read()];
  // Let the readers in before the writer asks.
  await tick();
  const write = lock.withWriteAsync(() => {
    assert.equal(readers, 0);
    order.push("write");
  });
  await Promise.all([...reads, write]);
  assert.equal(most, 3);
  assert.deepEqual(order, ["read", "read", "read", "write"]);
  assert.equal(lock.isIdle, true);
});

// The synchronous closure forms refuse an async fn: its code after the first
// await would run once the section had ended (lock released, read already
// validated). They once ran it, and released the lock at its first await.

Deno.test("closures: the synchronous forms refuse an async fn (and a non-function) before they take anything", async () => {
  const mutex = Mutex.create();
  const rw = RwLock.create();
  const latch = HybridLatch.create();
  const seq = SeqLock.create();
  const cell = SeqCell.create({ n: "i32" });
  let ran = 0;
  const asyncFn = async () => {
    ran++;
    await tick();
    return 1;
  };
  const forms: [string, (fn: never) => unknown][] = [
    ["Mutex.withLock", (fn) => mutex.withLock(fn)],
    ["RwLock.withRead", (fn) => rw.withRead(fn)],
    ["RwLock.withWrite", (fn) => rw.withWrite(fn)],
    ["HybridLatch.read", (fn) => latch.read(fn)],
    ["HybridLatch.readAsync", (fn) => latch.readAsync(fn)],
    ["HybridLatch.write", (fn) => latch.write(fn)],
    ["SeqLock.read", (fn) => seq.read(fn)],
    ["SeqLock.readAsync", (fn) => seq.readAsync(fn)],
    ["SeqLock.tryRead", (fn) => seq.tryRead(fn)],
    ["SeqLock.write", (fn) => seq.write(fn)],
    ["SeqLock.writeAsync", (fn) => seq.writeAsync(fn)],
    ["SeqCell.update", (fn) => cell.update(fn)],
  ];
  for (const [name, run] of forms) {
    const cases: [unknown, string][] = [[asyncFn, "is an async function"], [
      42,
      "must be a function",
    ]];
    for (const [fn, why] of cases) {
      let error: unknown;
      try {
        await run(fn as never);
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof TypeError, `${name}: ${error}`);
      assert.ok(error.message.includes(name) && error.message.includes(why), error.message);
    }
  }
  assert.equal(ran, 0);
  // Nothing was taken, and nothing was left held.
  assert.ok(!mutex.isLocked && rw.isIdle && seq.sequence % 2 === 0);
  const exclusive = latch.tryExclusive();
  assert.ok(exclusive !== undefined);
  exclusive.unlock();
  // A plain function that returns a promise is a synchronous section whose
  // result is that promise.
  const promise = Promise.resolve(7);
  assert.equal(mutex.withLock(() => promise), promise);
  assert.equal(await seq.write(() => promise), 7);
});
