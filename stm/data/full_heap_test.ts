/**
 * stm/data and Locs on a full heap: a structure that filled the heap can
 * still be emptied, cleared and destroyed, and Loc writes go on, through
 * the cells and descriptors each worker keeps for a full heap, reclamation
 * and retry, and the queue's partial refill of its front.
 */

import assert from "node:assert/strict";
import { Hashtbl, Mvar, Queue, Stack } from "./mod.ts";
import { Loc, Op, Xt } from "../mod.ts";
import { HeapExhaustedError, SharedHeap } from "../../memory/mod.ts";
import { runWorkers } from "../../testing/harness.ts";
import type { FullHeapQueueArgs, FullHeapQueueReport } from "./_data_test_workers.ts";

const fixtures = new URL("./_data_test_workers.ts", import.meta.url).href;
const MIB = 1 << 20;

function smallHeap(bytes = MIB): SharedHeap {
  return SharedHeap.create({ initialBytes: MIB, maxBytes: bytes });
}

/** Calls `add(i)` for i = 0, 1, … until the heap refuses; returns how many it took. */
function fill(add: (i: number) => void): number {
  let n = 0;
  try {
    for (;; n++) add(n);
  } catch (e) {
    if (!(e instanceof HeapExhaustedError)) throw e;
  }
  assert.ok(n > 1000, `only ${n} added before the heap was full`);
  return n;
}

function settled(heap: SharedHeap): number {
  for (let i = 0; i < 4; i++) heap.collect();
  return heap.stats().liveBlocks;
}

Deno.test("full heap: a Queue that filled the heap is drained in order, with length and peek right on the way, then takes new numbers", () => {
  const heap = smallHeap();
  const queue = Queue.create(heap);
  const n = fill((i) => queue.add(i));
  assert.equal(queue.length, n);
  for (let i = 0; i < n; i++) {
    if (i % 997 === 0) {
      assert.equal(queue.length, n - i);
      assert.equal(queue.tryPeek(), i);
    }
    assert.equal(queue.tryTake(), i);
  }
  assert.equal(queue.tryTake(), undefined);
  assert.equal(queue.length, 0);
  // The room came back.
  for (let i = 0; i < 1000; i++) queue.add(i);
  assert.equal(queue.length, 1000);
});

Deno.test("full heap: take, length and peek compose in one transaction while the queue's front is refilled in parts", () => {
  const heap = smallHeap();
  const queue = Queue.create(heap);
  const n = fill((i) => queue.add(i));
  for (let i = 0; i < n; i += 3) {
    const [a, b, length, next] = Xt.commit((xt) => [
      queue.xtTryTake(xt),
      queue.xtTryTake(xt),
      queue.xtLength(xt),
      queue.xtTryPeek(xt),
    ]);
    assert.equal(a, i);
    assert.equal(b, i + 1 < n ? i + 1 : undefined);
    assert.equal(length, Math.max(0, n - i - 2));
    assert.equal(next, i + 2 < n ? i + 2 : undefined);
    if (i + 2 < n) assert.equal(queue.tryTake(), i + 2);
  }
  assert.equal(queue.length, 0);
});

Deno.test("full heap: clear and destroy of a Queue and a Stack that filled the heap, and of a Hashtbl that grew until the heap refused its next table, give the room back", () => {
  for (const make of ["queue", "stack", "hashtbl"] as const) {
    const heap = smallHeap();
    const baseline = settled(heap);
    let clear: () => void;
    let destroy: () => void;
    let count: () => number;
    if (make === "queue") {
      const q = Queue.create(heap);
      fill((i) => q.add(i));
      [clear, destroy, count] = [() => q.clear(), () => q.destroy(), () => q.length];
    } else if (make === "stack") {
      const s = Stack.create(heap);
      fill((i) => s.push(i));
      [clear, destroy, count] = [() => s.clear(), () => s.destroy(), () => s.length];
    } else {
      const t = Hashtbl.create(heap);
      fill((i) => t.set(i, i));
      // (A Hashtbl beside Locs that fill the heap: the test below.)
      assert.equal(t.remove(0), 0, "a remove after the refused growth");
      [clear, destroy, count] = [() => t.clear(), () => t.destroy(), () => t.length];
    }
    clear();
    assert.equal(count(), 0, make);
    destroy();
    // Left: the STM domain header and its shared reserve (12 blocks), the
    // marker Loc of the transactions that allocate and its cell, and this
    // worker's reserve (20 blocks), all made after `baseline`.
    const left = settled(heap) - baseline;
    assert.ok(left <= 1 + 12 + 2 + 20, `${make}: ${left} blocks left`);
  }
});

Deno.test("full heap: a Hashtbl beside Locs that fill the heap removes every key; clear refuses with nothing changed, then succeeds once empty", () => {
  const heap = smallHeap();
  const table = Hashtbl.create(heap);
  for (let i = 0; i < 2000; i++) table.set(i, i * 10);
  const ballast = fill(() => Loc.make(heap, 0));
  assert.ok(ballast > 1000);
  // A clear needs a new table and a descriptor of an entry per bucket.
  assert.throws(() => table.clear(), HeapExhaustedError);
  assert.equal(table.length, 2000);
  assert.equal(table.get(1999), 19990);
  // Removes shrink the table in commits of their own, which the full heap
  // refuses: the removes go on (the oldest keys lie at the chains' ends,
  // so each copies the entries ahead of it).
  for (let i = 0; i < 2000; i++) assert.equal(table.remove(i), i * 10, `remove ${i}`);
  assert.equal(table.length, 0);
  table.clear(); // empty: only the capacity could not go back
  table.set(7, 70);
  assert.equal(table.get(7), 70);
  table.destroy();
});

Deno.test("full heap: a Hashtbl whose growth the heap refused shrinks as removes empty it, and takes new keys again", () => {
  const heap = smallHeap();
  const table = Hashtbl.create(heap);
  const added = fill((i) => table.set(i, i));
  const grown = table.capacity;
  // The refused growth stays pending; once the removes have emptied the
  // table it is no longer due, and the shrinks go ahead.
  for (let i = 0; i < added; i++) assert.equal(table.remove(i), i);
  assert.ok(table.capacity < grown, `capacity ${table.capacity}, was ${grown}`);
  for (let i = 0; i < 50; i++) table.set(1e6 + i, i);
  assert.equal(table.length, 50);
  assert.equal(table.get(1e6 + 49), 49);
});

Deno.test("full heap: a Stack that filled the heap pops every number, newest first", () => {
  const heap = smallHeap();
  const stack = Stack.create(heap);
  const n = fill((i) => stack.push(i));
  for (let i = n - 1; i >= 0; i--) assert.equal(stack.tryPop(), i);
  assert.equal(stack.tryPop(), undefined);
});

Deno.test("full heap: Loc writes, update, compareAndSet, Op.atomically and Mvar hand-offs go on when Locs fill the heap", () => {
  const heap = smallHeap();
  const locs: Loc[] = [];
  const mvar = Mvar.create(heap);
  fill(() => locs.push(Loc.make(heap, 0)));
  for (let round = 0; round < 200; round++) {
    const loc = locs[2 + round % 100];
    loc.set(round);
    assert.equal(loc.update((x) => x + 1), round);
    assert.ok(loc.compareAndSet(round + 1, round + 2));
    assert.ok(Op.atomically([Op.cas(loc, round + 2, -1), Op.cas(locs[0], locs[0].get(), round)]));
    mvar.put(round);
    assert.equal(mvar.take(), round);
    Xt.commit((xt) => xt.set(locs[1], round)); // a one-Loc transaction: recovered by retry
  }
  locs[200].free();
  locs[201].set(9);
  assert.equal(locs[201].get(), 9);
});

Deno.test("full heap: a transaction inside the caller's own pin fails at once instead of waiting for reclamation", () => {
  const heap = smallHeap();
  const queue = Queue.create(heap);
  fill((i) => queue.add(i));
  const guard = heap.pin();
  try {
    const started = performance.now();
    assert.throws(() => queue.add(-1), HeapExhaustedError);
    // (No timing assertion: it only must not hang.)
    assert.ok(performance.now() - started >= 0);
  } finally {
    guard[Symbol.dispose]();
  }
  assert.equal(queue.tryTake(), 0);
});

Deno.test("full heap: 2 producers fill the heap through one Queue, then 4 workers drain it: every number once, each producer's in order", async () => {
  const heap = smallHeap(2 * MIB);
  const queue = Queue.create(heap);
  const producers = 2;
  const reports = await runWorkers<FullHeapQueueArgs, FullHeapQueueReport>({
    module: fixtures,
    fn: "fullHeapQueue",
    workers: 4,
    heap,
    args: { queue: queue.handle, producers },
    timeoutMs: 30_000,
  });
  const expected: number[] = [];
  for (let p = 0; p < producers; p++) {
    assert.ok(reports[p].added > 1000, `producer ${p} added ${reports[p].added}`);
    for (let i = 0; i < reports[p].added; i++) expected.push(p * 1e6 + i);
  }
  const taken = reports.flatMap((r) => r.taken).sort((a, b) => a - b);
  assert.equal(taken.length, expected.length);
  assert.deepEqual(taken, expected);
  assert.equal(queue.length, 0);
  // Workers 2 and 3 never allocated before the heap was full, so their
  // takes may be refused (and retried) until the producers' takes free room.
  assert.ok(reports[0].taken.length + reports[1].taken.length > 0);
});

Deno.test("full heap: workers that attach after the main thread filled the heap through a Queue drain it, through the domain's shared reserve", async () => {
  const heap = smallHeap();
  const queue = Queue.create(heap);
  // Page blocks fill all but one page first, so that the drain is short.
  // (The emptied pages of the queue's nodes stay this thread's, which does
  // not collect while it waits: the workers never get them.)
  const ballast: number[] = [];
  try {
    for (;;) ballast.push(heap.allocate(64 * 1024));
  } catch (e) {
    if (!(e instanceof HeapExhaustedError)) throw e;
  }
  heap.free(ballast.pop()!);
  const added = fill((i) => queue.add(i));
  // None of the workers has committed in this heap, and the heap has no
  // room for their cells and descriptors: only the shared reserve, then
  // the blocks their takes free, let them commit.
  const reports = await runWorkers<FullHeapQueueArgs, FullHeapQueueReport>({
    module: fixtures,
    fn: "fullHeapQueue",
    workers: 3,
    heap,
    args: { queue: queue.handle, producers: 0 },
    timeoutMs: 60_000,
  });
  const taken = reports.flatMap((r) => r.taken).sort((a, b) => a - b);
  assert.equal(taken.length, added);
  for (let i = 0; i < added; i++) assert.equal(taken[i], i);
  assert.equal(queue.length, 0);
});
