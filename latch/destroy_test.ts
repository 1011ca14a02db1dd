/**
 * destroy() of every latch: later calls on the object throw DestroyedError,
 * a second destroy() throws it from any object of the same latch, and a
 * wait that another worker's object would begin on a destroyed latch throws
 * it rather than waiting for a release that never comes.
 */

import assert from "node:assert/strict";
import {
  Condvar,
  DestroyedError,
  HybridLatch,
  Mutex,
  RwLock,
  SabreError,
  SharedHeap,
} from "../mod.ts";
import { assertEveryCallDestroyed, testDestroyAcrossObjects } from "../testing/destroy.ts";

const noop = () => 0;
/**
 * The waits on a destroyed object are bounded, so that one that would wait
 * fails the test with a TimeoutError rather than hang it.
 */
const T = { timeoutMs: 2_000 };

Deno.test("Mutex: every call after destroy() throws DestroyedError", async () => {
  const mutex = Mutex.create(SharedHeap.create());
  mutex.destroy();
  await assertEveryCallDestroyed(mutex, "Mutex", {
    handle: (m: Mutex) => m.handle,
    isLocked: (m: Mutex) => m.isLocked,
    lock: (m: Mutex) => m.lock(),
    tryLock: (m: Mutex) => m.tryLock(),
    lockAsync: (m: Mutex) => m.lockAsync(),
    withLock: (m: Mutex) => m.withLock(noop),
    withLockAsync: (m: Mutex) => m.withLockAsync(noop),
    acquire: (m: Mutex) => m.acquire(),
    tryAcquire: (m: Mutex) => m.tryAcquire(),
    acquireAsync: (m: Mutex) => m.acquireAsync(),
    release: (m: Mutex) => m.release(),
  });
});

Deno.test("RwLock: every call after destroy() throws DestroyedError", async () => {
  const lock = RwLock.create(SharedHeap.create());
  lock.destroy();
  await assertEveryCallDestroyed(lock, "RwLock", {
    handle: (l: RwLock) => l.handle,
    readers: (l: RwLock) => l.readers,
    isWriteLocked: (l: RwLock) => l.isWriteLocked,
    isIdle: (l: RwLock) => l.isIdle,
    read: (l: RwLock) => l.read(),
    tryRead: (l: RwLock) => l.tryRead(),
    readAsync: (l: RwLock) => l.readAsync(),
    withRead: (l: RwLock) => l.withRead(noop),
    withReadAsync: (l: RwLock) => l.withReadAsync(noop),
    acquireRead: (l: RwLock) => l.acquireRead(),
    tryAcquireRead: (l: RwLock) => l.tryAcquireRead(),
    acquireReadAsync: (l: RwLock) => l.acquireReadAsync(),
    releaseRead: (l: RwLock) => l.releaseRead(),
    write: (l: RwLock) => l.write(),
    tryWrite: (l: RwLock) => l.tryWrite(),
    writeAsync: (l: RwLock) => l.writeAsync(),
    withWrite: (l: RwLock) => l.withWrite(noop),
    withWriteAsync: (l: RwLock) => l.withWriteAsync(noop),
    acquireWrite: (l: RwLock) => l.acquireWrite(),
    tryAcquireWrite: (l: RwLock) => l.tryAcquireWrite(),
    acquireWriteAsync: (l: RwLock) => l.acquireWriteAsync(),
    releaseWrite: (l: RwLock) => l.releaseWrite(),
    downgradeWrite: (l: RwLock) => l.downgradeWrite(),
  });
});

Deno.test("Condvar: every call after destroy() throws DestroyedError", async () => {
  const heap = SharedHeap.create();
  const cv = Condvar.create(heap);
  const mutex = Mutex.create(heap);
  cv.destroy();
  await assertEveryCallDestroyed(cv, "Condvar", {
    handle: (c: Condvar) => c.handle,
    waiters: (c: Condvar) => c.waiters,
    wait: (c: Condvar) => mutex.withLock(() => c.wait(mutex)),
    waitAsync: async (c: Condvar) => {
      await mutex.acquireAsync();
      try {
        await c.waitAsync(mutex);
      } finally {
        mutex.release();
      }
    },
    waitWhile: (c: Condvar) => mutex.withLock(() => c.waitWhile(mutex, () => false)),
    waitWhileAsync: async (c: Condvar) => {
      await mutex.acquireAsync();
      try {
        await c.waitWhileAsync(mutex, () => false);
      } finally {
        mutex.release();
      }
    },
    notifyOne: (c: Condvar) => c.notifyOne(),
    notifyAll: (c: Condvar) => c.notifyAll(),
  });
  // A failed wait leaves the mutex as it found it.
  assert.equal(mutex.isLocked, false);
});

Deno.test("HybridLatch: every call after destroy() throws DestroyedError", async () => {
  const latch = HybridLatch.create(SharedHeap.create());
  const version = latch.currentVersion();
  latch.destroy();
  await assertEveryCallDestroyed(latch, "HybridLatch", {
    handle: (l: HybridLatch) => l.handle,
    currentVersion: (l: HybridLatch) => l.currentVersion(),
    exclusive: (l: HybridLatch) => l.exclusive(),
    tryExclusive: (l: HybridLatch) => l.tryExclusive(),
    exclusiveAsync: (l: HybridLatch) => l.exclusiveAsync(),
    shared: (l: HybridLatch) => l.shared(),
    tryShared: (l: HybridLatch) => l.tryShared(),
    sharedAsync: (l: HybridLatch) => l.sharedAsync(),
    optimisticOrSpin: (l: HybridLatch) => l.optimisticOrSpin(),
    optimisticOrSpinAsync: (l: HybridLatch) => l.optimisticOrSpinAsync(),
    optimisticOrUnwind: (l: HybridLatch) => l.optimisticOrUnwind(),
    optimisticOrShared: (l: HybridLatch) => l.optimisticOrShared(),
    optimisticOrExclusive: (l: HybridLatch) => l.optimisticOrExclusive(),
    read: (l: HybridLatch) => l.read(noop),
    readAsync: (l: HybridLatch) => l.readAsync(noop),
    write: (l: HybridLatch) => l.write(noop),
    writeAsync: (l: HybridLatch) => l.writeAsync(noop),
    releaseExclusive: (l: HybridLatch) => l.releaseExclusive(version + 1),
    upgradeToExclusive: (l: HybridLatch) => l.upgradeToExclusive(version),
    upgradeToShared: (l: HybridLatch) => l.upgradeToShared(version),
  });
});

/** Each latch kind, made in `heap`, with what a second object of it does that would wait. */
const KINDS = [
  {
    name: "Mutex",
    create: (heap: SharedHeap) => Mutex.create(heap),
    attach: (l: Mutex) => Mutex.attach(l.handle),
    waits: [
      (l: Mutex) => l.acquire(T),
      (l: Mutex) => l.lock(T),
      (l: Mutex) => l.acquireAsync(T),
    ],
  },
  {
    name: "RwLock",
    create: (heap: SharedHeap) => RwLock.create(heap),
    attach: (l: RwLock) => RwLock.attach(l.handle),
    waits: [
      (l: RwLock) => l.acquireRead(T),
      (l: RwLock) => l.acquireWrite(T),
      (l: RwLock) => l.read(T),
      (l: RwLock) => l.readAsync(T),
      (l: RwLock) => l.writeAsync(T),
    ],
  },
  {
    name: "Condvar",
    create: (heap: SharedHeap) => Condvar.create(heap),
    attach: (l: Condvar) => Condvar.attach(l.handle),
    waits: [(l: Condvar) => {
      const mutex = Mutex.create();
      mutex.acquire();
      try {
        l.wait(mutex, T);
      } finally {
        mutex.release();
      }
    }],
  },
  {
    name: "HybridLatch",
    create: (heap: SharedHeap) => HybridLatch.create(heap),
    attach: (l: HybridLatch) => HybridLatch.attach(l.handle),
    waits: [
      (l: HybridLatch) => l.exclusive(T),
      (l: HybridLatch) => l.shared(T),
      (l: HybridLatch) => l.optimisticOrSpin(T),
      (l: HybridLatch) => l.read(noop, T),
      (l: HybridLatch) => l.exclusiveAsync(T),
      (l: HybridLatch) => l.optimisticOrSpinAsync(T),
    ],
  },
];

testDestroyAcrossObjects(KINDS);

Deno.test("destroy() of a held latch throws SabreError and leaves it usable", () => {
  const heap = SharedHeap.create();
  const mutex = Mutex.create(heap);
  mutex.acquire();
  assert.throws(
    () => mutex.destroy(),
    (e: unknown) => e instanceof SabreError && !(e instanceof DestroyedError),
  );
  mutex.release();
  mutex.destroy();

  const lock = RwLock.create(heap);
  lock.acquireRead();
  assert.throws(() => lock.destroy(), /locked or has waiters/);
  lock.releaseRead();
  lock.destroy();

  const latch = HybridLatch.create(heap);
  const guard = latch.exclusive();
  assert.throws(() => latch.destroy(), /held or has waiters/);
  guard.unlock();
  latch.shared().unlock();
  latch.destroy();
});
