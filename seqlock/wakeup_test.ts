/**
 * Every waker of SeqLock and SeqCell notifies: workers park (sync and async
 * forms) with recovery from killed wakers off, so that a write that ended
 * without its `Atomics.notify` leaves them parked and fails the test (see
 * testing/wakeups.ts).
 */

import assert from "node:assert/strict";
import { SeqCell, SeqLock } from "./mod.ts";
import { SEQ } from "./seqlock.ts";
import { expectWoken } from "../testing/wakeups.ts";
import type { WakeArgs } from "./_wakeup_test_workers.ts";

const module = new URL("./_wakeup_test_workers.ts", import.meta.url);
const WORKERS = 4;

function run(args: WakeArgs, release: () => void): Promise<number[]> {
  return expectWoken<WakeArgs, number>({ module, fn: "parkOnce", workers: WORKERS, args, release });
}

Deno.test("SeqLock: the end of a write wakes parked readers and a parked writer", async () => {
  const lock = SeqLock.create();
  lock.beginWrite();
  const read = await run({ kind: "seqlock-read", lock: lock.handle }, () => lock.endWrite());
  assert.deepEqual(read, [2, 2, 2, 2]);
  lock.beginWrite();
  await run({ kind: "seqlock-write", lock: lock.handle }, () => lock.endWrite());
  assert.equal(lock.sequence, 4 + 2 * WORKERS);
});

Deno.test("SeqCell: a full write and a partial write each wake parked readers", async () => {
  const cell = SeqCell.create({ a: "i32", b: "i32" });
  const words = new Int32Array(cell.handle.sab, cell.handle.offset, 2);
  const writes = [
    () => cell.write({ a: 5, b: -5 }), // all fields, in schema order
    () => cell.write({ b: -6, a: 6 }), // field by field
  ];
  for (const write of writes) {
    // Readers park on a sequence made odd by hand; putting it back wakes
    // nobody, so only the write's notify can.
    Atomics.add(words, SEQ, 1);
    const read = await run({ kind: "seqcell-read", cell: cell.handle }, () => {
      Atomics.sub(words, SEQ, 1);
      write();
    });
    assert.equal(new Set(read).size, 1);
  }
  assert.deepEqual(cell.read(), { a: 6, b: -6 });
});
