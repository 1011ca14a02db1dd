/**
 * destroy() of SeqLock and SeqCell: later calls on the object throw
 * DestroyedError, a second destroy() throws it from any object of the same
 * lock or cell, and a wait that another worker's object would begin on a
 * destroyed one throws it rather than waiting for a write that never ends.
 */

import assert from "node:assert/strict";
import { DestroyedError, SabreError, SeqCell, SeqLock, SharedHeap } from "../mod.ts";
import { assertEveryCallDestroyed, testDestroyAcrossObjects } from "../testing/destroy.ts";

const noop = () => 0;
/**
 * The waits on a destroyed object are bounded, so that one that would wait
 * fails the test with a TimeoutError rather than hang it.
 */
const T = { timeoutMs: 2_000 };

Deno.test("SeqLock: every call after destroy() throws DestroyedError", async () => {
  const lock = SeqLock.create(SharedHeap.create());
  const stamp = lock.readBegin();
  lock.destroy();
  await assertEveryCallDestroyed(lock, "SeqLock", {
    handle: (l: SeqLock) => l.handle,
    sequence: (l: SeqLock) => l.sequence,
    readBegin: (l: SeqLock) => l.readBegin(),
    readRetry: (l: SeqLock) => l.readRetry(stamp),
    read: (l: SeqLock) => l.read(noop),
    readAsync: (l: SeqLock) => l.readAsync(noop),
    tryRead: (l: SeqLock) => l.tryRead(noop),
    write: (l: SeqLock) => l.write(noop),
    writeAsync: (l: SeqLock) => l.writeAsync(noop),
    writeLock: (l: SeqLock) => l.writeLock(),
    tryWriteLock: (l: SeqLock) => l.tryWriteLock(),
    writeLockAsync: (l: SeqLock) => l.writeLockAsync(),
    beginWrite: (l: SeqLock) => l.beginWrite(),
    endWrite: (l: SeqLock) => l.endWrite(),
  });
});

Deno.test("SeqCell: every call after destroy() throws DestroyedError", async () => {
  const cell = SeqCell.create({ a: "i32", b: "f64" }, { heap: SharedHeap.create() });
  cell.destroy();
  type Cell = typeof cell;
  await assertEveryCallDestroyed(cell, "SeqCell", {
    handle: (c: Cell) => c.handle,
    fields: (c: Cell) => c.fields,
    version: (c: Cell) => c.version,
    read: (c: Cell) => c.read(),
    readAsync: (c: Cell) => c.readAsync(),
    readInto: (c: Cell) => c.readInto({ a: 0, b: 0 }),
    tryRead: (c: Cell) => c.tryRead(),
    get: (c: Cell) => c.get("a"),
    write: (c: Cell) => c.write({ a: 1 }),
    writeAsync: (c: Cell) => c.writeAsync({ a: 1 }),
    tryWrite: (c: Cell) => c.tryWrite({ a: 1 }),
    update: (c: Cell) => c.update(() => ({ a: 1 })),
  });
});

const KINDS = [
  {
    name: "SeqLock",
    create: (heap: SharedHeap) => SeqLock.create(heap),
    attach: (l: SeqLock) => SeqLock.attach(l.handle),
    waits: [
      (l: SeqLock) => l.read(noop, T),
      (l: SeqLock) => l.readBegin(T),
      (l: SeqLock) => l.readAsync(noop, T),
      (l: SeqLock) => l.beginWrite(T),
      (l: SeqLock) => l.write(noop, T),
      (l: SeqLock) => l.writeLockAsync(T),
    ],
  },
  {
    name: "SeqCell",
    create: (heap: SharedHeap) => SeqCell.create({ a: "i32" }, { heap }),
    attach: (c: SeqCell<{ a: "i32" }>) => SeqCell.attach<{ a: "i32" }>(c.handle),
    waits: [
      (c: SeqCell<{ a: "i32" }>) => c.read(T),
      (c: SeqCell<{ a: "i32" }>) => c.get("a", T),
      (c: SeqCell<{ a: "i32" }>) => c.readAsync(T),
      (c: SeqCell<{ a: "i32" }>) => c.write({ a: 2 }, T),
      (c: SeqCell<{ a: "i32" }>) => c.writeAsync({ a: 2 }, T),
      (c: SeqCell<{ a: "i32" }>) => c.update(() => ({ a: 3 }), T),
    ],
  },
];

testDestroyAcrossObjects(KINDS);

Deno.test("destroy() during a write throws SabreError and leaves the lock usable", () => {
  const heap = SharedHeap.create();
  const lock = SeqLock.create(heap);
  lock.beginWrite();
  assert.throws(
    () => lock.destroy(),
    (e: unknown) => e instanceof SabreError && !(e instanceof DestroyedError),
  );
  lock.endWrite();
  assert.equal(lock.read(() => 7), 7);
  lock.destroy();

  const cell = SeqCell.create({ a: "i32" }, { heap });
  cell.update((c) => {
    assert.throws(() => cell.destroy(), /during a write/);
    return { a: c.a + 1 };
  });
  assert.equal(cell.get("a"), 1);
  cell.destroy();
});
