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

Deno.test("full heap: clear and destroy of a Queue, a Stack and a Hashtbl that filled the heap give its room back", () => {
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
      assert.equal(t.remove(0), 0, "a remove on the full heap");
      [clear, destroy, count] = [() => t.clear(), () => t.destroy(), () => t.length];
    }
    clear();
    assert.equal(count(), 0, make);
    destroy();
    // Left: the STM domain header, the marker Loc of the transactions that
    // allocate, and this worker's reserve, all made after `baseline`.
    const left = settled(heap) - baseline;
    assert.ok(left <= 24, `${make}: ${left} blocks left`);
  }
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
