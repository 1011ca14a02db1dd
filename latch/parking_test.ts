/**
 * Options of the blocking calls: every form refuses options that are not
 * an object, and fields it does not know (a misspelt `timeoutMs` would
 * otherwise mean "wait forever"), naming what was wrong.
 */

import assert from "node:assert/strict";
import {
  Condvar,
  HybridLatch,
  Loc,
  Mutex,
  RwLock,
  SeqCell,
  SeqLock,
  SharedHeap,
  TimeoutError,
  Xt,
} from "../mod.ts";

Deno.test("options: every blocking call refuses a non-object and an unknown field, changing nothing", async () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  const rwlock = RwLock.create(heap);
  const latch = HybridLatch.create(heap);
  const condvar = Condvar.create(heap);
  const seqlock = SeqLock.create(heap);
  const cell = SeqCell.create({ v: "i32" }, { heap });
  const loc = Loc.make(heap, 1);
  const calls: [string, (options: never) => unknown][] = [
    ["Mutex.lock", (o) => mutex.lock(o).unlock()],
    ["Mutex.lockAsync", (o) => mutex.lockAsync(o)],
    ["RwLock.read", (o) => rwlock.read(o).unlock()],
    ["RwLock.acquireRead", (o) => rwlock.acquireRead(o)],
    ["RwLock.write", (o) => rwlock.write(o).unlock()],
    ["RwLock.writeAsync", (o) => rwlock.writeAsync(o)],
    ["HybridLatch.exclusive", (o) => latch.exclusive(o).unlock()],
    ["HybridLatch.read", (o) => latch.read(() => 0, o)],
    ["Condvar.wait", (o) => mutex.withLock(() => condvar.wait(mutex, o))],
    ["SeqLock.read", (o) => seqlock.read(() => 0, o)],
    ["SeqCell.read", (o) => cell.read(o)],
    ["SeqCell.get", (o) => cell.get("v", o)],
    ["SeqCell.write", (o) => cell.write({ v: 2 }, o)],
    ["Xt.commit", (o) => Xt.commit((xt) => xt.get(loc), o)],
    ["Xt.commitAsync", (o) => Xt.commitAsync((xt) => xt.get(loc), o)],
  ];
  for (const [name, call] of calls) {
    for (const options of [100, "x", null, true]) {
      const refused = (e: unknown) =>
        e instanceof TypeError && /'options' must be an object/.test(e.message);
      try {
        await call(options as never);
        assert.fail(`${name} took ${String(options)} as options`);
      } catch (e) {
        assert.ok(refused(e), `${name} with ${String(options)}: ${e}`);
      }
    }
    try {
      await call({ timeout: 100 } as never);
      assert.fail(`${name} took { timeout: 100 }`);
    } catch (e) {
      assert.ok(
        e instanceof TypeError && /no field "timeout": it takes 'timeoutMs'/.test(e.message),
        `${name}: ${e}`,
      );
    }
  }
  assert.equal(mutex.isLocked, false);
  assert.equal(rwlock.isIdle, true);
  assert.equal(cell.read().v, 0);
  // What each one does take.
  assert.equal(Xt.commit((xt) => xt.get(loc), { timeoutMs: 10, mode: "lock-free" }), 1);
  mutex.lock({ timeoutMs: 10 }).unlock();
  mutex.lock({}).unlock();
});

Deno.test("timeouts: HybridLatch and Condvar.waitWhile name their own operation and the caller's timeoutMs", async () => {
  const latch = HybridLatch.create();
  const held = latch.exclusive();
  const cases: [string, RegExp, () => unknown][] = [
    ["exclusive", /lock HybridLatch exclusively/, () => latch.exclusive({ timeoutMs: 25 })],
    [
      "exclusiveAsync",
      /lock HybridLatch exclusively/,
      () => latch.exclusiveAsync({ timeoutMs: 25 }),
    ],
    ["shared", /lock HybridLatch shared/, () => latch.shared({ timeoutMs: 25 })],
    ["sharedAsync", /lock HybridLatch shared/, () => latch.sharedAsync({ timeoutMs: 25 })],
    ["read", /read HybridLatch/, () => latch.read(() => 0, { timeoutMs: 25 })],
    ["readAsync", /read HybridLatch/, () => latch.readAsync(() => 0, { timeoutMs: 25 })],
    ["optimisticOrSpin", /wait for HybridLatch/, () => latch.optimisticOrSpin({ timeoutMs: 25 })],
  ];
  for (const [name, operation, call] of cases) {
    try {
      await call();
      assert.fail(`${name} did not time out`);
    } catch (e) {
      assert.ok(e instanceof TimeoutError, `${name}: ${e}`);
      assert.match(e.message, operation, name);
      assert.doesNotMatch(e.message, /RwLock/, name);
      assert.equal(e.timeoutMs, 25, name);
    }
  }
  held.unlock();
  const mutex = Mutex.create();
  const condvar = Condvar.create();
  for (
    const wait of [
      () => condvar.waitWhile(mutex, () => true, { timeoutMs: 30 }),
      () => condvar.waitWhileAsync(mutex, () => true, { timeoutMs: 30 }),
    ]
  ) {
    mutex.acquire();
    try {
      await wait();
      assert.fail("waitWhile did not time out");
    } catch (e) {
      assert.ok(e instanceof TimeoutError);
      assert.match(e.message, /wait on Condvar/);
      assert.equal(e.timeoutMs, 30);
    } finally {
      mutex.release();
    }
  }
});
