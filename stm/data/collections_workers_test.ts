/**
 * Multi-worker tests of the node-based stm/data structures, with 8 workers
 * on few cores: unbounded Queue (every number taken once, each producer's
 * in order), unbounded Stack (every pushed number popped exactly once),
 * Hashtbl (contents equal the union of what each worker did with the keys
 * it owns, through rehashes) and Dllist (the list holds exactly the nodes
 * the workers kept, linked consistently both ways). Each also checks that
 * memory comes back. A last test races `clear` against adds and takes on
 * all three containers: every number is taken, cleared or left, once.
 */

import assert from "node:assert/strict";
import { Dllist, Hashtbl, Queue, Stack } from "./mod.ts";
import { SharedHeap } from "../../memory/mod.ts";
import { runWorkers } from "../../testing/harness.ts";
import type {
  ClearRaceArgs,
  ClearRaceReport,
  DllistArgs,
  DllistHandoffArgs,
  DllistRaceArgs,
  DllistRaceReport,
  HashtblArgs,
  QueueArgs,
  StackArgs,
} from "./_data_test_workers.ts";

const fixtures = new URL("./_data_test_workers.ts", import.meta.url).href;
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

function sorted(values: number[]): number[] {
  return values.slice().sort((a, b) => a - b);
}

Deno.test("unbounded Queue: 4 producers, 4 consumers: every number taken once, in producer order", async () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap);
  const producers = 4;
  const perProducer = 400 * STRESS;
  const results = await runWorkers<QueueArgs, number[]>({
    module: fixtures,
    fn: "unboundedQueue",
    workers: 8,
    heap,
    args: { queue: queue.handle, producers, perProducer },
    timeoutMs: 60_000,
  });
  const expected: number[] = [];
  for (let p = 0; p < producers; p++) {
    for (let i = 0; i < perProducer; i++) expected.push(p * 1e6 + i);
  }
  assert.deepEqual(sorted(results.flat()), expected);
  assert.equal(queue.length, 0);
  assert.equal(queue.tryTake(), undefined);
});

Deno.test("unbounded Stack: 8 workers push and pop: every pushed number is popped exactly once", async () => {
  const heap = SharedHeap.create();
  const stack = Stack.create(heap);
  const perWorker = 400 * STRESS;
  const results = await runWorkers<StackArgs, number[]>({
    module: fixtures,
    fn: "unboundedStack",
    workers: 8,
    heap,
    args: { stack: stack.handle, perWorker },
    timeoutMs: 60_000,
  });
  const popped = results.flat();
  assert.equal(stack.length, 8 * perWorker - popped.length);
  for (let v = stack.tryPop(); v !== undefined; v = stack.tryPop()) popped.push(v);
  const expected: number[] = [];
  for (let w = 0; w < 8; w++) for (let i = 0; i < perWorker; i++) expected.push(w * 1e6 + i);
  assert.deepEqual(sorted(popped), expected);
  for (let i = 0; i < 4; i++) heap.collect();
  const s = heap.stats();
  // The stack's head Loc and cell, the record, the STM domain, markers: no nodes.
  assert.ok(s.liveBlocks - s.retiredBlocks < 64, `${s.liveBlocks - s.retiredBlocks} blocks live`);
});

Deno.test("Hashtbl: 8 workers on their own keys: contents are the union, through rehashes", async () => {
  const heap = SharedHeap.create();
  const table = Hashtbl.create(heap, { capacity: 2 });
  const results = await runWorkers<HashtblArgs, [number, number][]>({
    module: fixtures,
    fn: "hashtblOwner",
    workers: 8,
    heap,
    args: { table: table.handle, keys: 400, rounds: 800 * STRESS },
    timeoutMs: 60_000,
  });
  const expected = results.flat().sort((a, b) => a[0] - b[0]);
  assert.deepEqual(table.entries().sort((a, b) => a[0] - b[0]), expected);
  assert.equal(table.length, expected.length);
  for (const [k, v] of expected) assert.equal(table.get(k), v);
});

Deno.test("Dllist: 8 workers add, move and remove their own nodes of one list: it holds exactly the kept ones", async () => {
  const heap = SharedHeap.create();
  const list = Dllist.create(heap);
  const results = await runWorkers<DllistArgs, number[]>({
    module: fixtures,
    fn: "dllistOwner",
    workers: 8,
    heap,
    args: { list: list.handle, rounds: 600 * STRESS },
    timeoutMs: 60_000,
  });
  const kept = sorted(results.flat());
  const forward = list.toArray();
  assert.deepEqual(sorted(forward), kept);
  // The prev links agree with the next links.
  const backward: number[] = [];
  for (let v = list.tryTakeLast(); v !== undefined; v = list.tryTakeLast()) backward.push(v);
  assert.deepEqual(backward.reverse(), forward);
  assert.ok(list.isEmpty());
});

Deno.test("Dllist: 6 workers race to remove and move the same nodes while adds reuse removed ones: each node is removed once, stale handles get false", async () => {
  const heap = SharedHeap.create();
  const list = Dllist.create(heap);
  const initial = Array.from({ length: 200 }, (_, i) => i);
  const shared = initial.map((v) => list.addLast(v).address);
  const results = await runWorkers<DllistRaceArgs, DllistRaceReport>({
    module: fixtures,
    fn: "dllistRace",
    workers: 6,
    heap,
    args: { list: list.handle, shared, rounds: 1500 * STRESS },
    timeoutMs: 120_000,
  });
  const removed = results.flatMap((r) => r.removed);
  assert.equal(new Set(removed).size, removed.length, "a node was removed twice");
  assert.equal(results.reduce((n, r) => n + r.staleHits, 0), 0);
  const gone = new Set(removed);
  const expected = sorted(
    [...initial, ...results.flatMap((r) => r.added)].filter((v) => !gone.has(v)),
  );
  const forward = list.toArray();
  assert.deepEqual(sorted(forward), expected);
  const backward: number[] = [];
  for (let v = list.tryTakeLast(); v !== undefined; v = list.tryTakeLast()) backward.push(v);
  assert.deepEqual(backward.reverse(), forward);
});

Deno.test("Dllist: one worker adds, another takes, the list never longer than 8: removed nodes are reused, memory stays bounded", async () => {
  const heap = SharedHeap.create();
  const list = Dllist.create(heap);
  const inUse = () => {
    for (let i = 0; i < 4; i++) heap.collect();
    const s = heap.stats();
    return s.liveBlocks - s.retiredBlocks;
  };
  const before = inUse();
  const batches = 250;
  const batch = 8;
  const results = await runWorkers<DllistHandoffArgs, number>({
    module: fixtures,
    fn: "dllistHandoff",
    workers: 2,
    heap,
    args: { list: list.handle, batches, batch },
    timeoutMs: 60_000,
  });
  const n = batches * batch;
  assert.equal(results[1], (n * (n - 1)) / 2);
  assert.ok(list.isEmpty());
  // A node is a block and four Locs (a block and a cell each): 9 blocks.
  // 2000 inserts through a list of at most 8 nodes must not allocate
  // hundreds of nodes (the free lists' root and markers are a few blocks).
  const grown = inUse() - before;
  assert.ok(
    grown < 9 * 100,
    `${grown} blocks in use after ${n} inserts (about ${Math.round(grown / 9)} nodes)`,
  );
});

Deno.test("Queue, Stack and Hashtbl: 6 workers add, take and clear at once: every number is taken, cleared or left exactly once", async () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap);
  const stack = Stack.create(heap);
  const table = Hashtbl.create(heap, { capacity: 2 });
  const results = await runWorkers<ClearRaceArgs, ClearRaceReport>({
    module: fixtures,
    fn: "clearRace",
    workers: 6,
    heap,
    args: { queue: queue.handle, stack: stack.handle, table: table.handle, rounds: 500 * STRESS },
    timeoutMs: 120_000,
  });
  const added = sorted(results.flatMap((r) => r.added));
  const sum = (f: (r: ClearRaceReport) => number) => results.reduce((n, r) => n + f(r), 0);
  const left: number[] = [];
  for (let v = queue.tryTake(); v !== undefined; v = queue.tryTake()) left.push(v);
  const taken = results.flatMap((r) => r.taken);
  assert.equal(new Set([...taken, ...left]).size, taken.length + left.length, "taken twice");
  assert.equal(taken.length + sum((r) => r.queueCleared) + left.length, added.length, "queue");
  let stacked = 0;
  while (stack.tryPop() !== undefined) stacked++;
  const popped = results.flatMap((r) => r.popped);
  assert.equal(new Set(popped).size, popped.length, "popped twice");
  assert.equal(popped.length + sum((r) => r.stackCleared) + stacked, added.length, "stack");
  // Every key was set once: it was removed, cleared, or is still there, once.
  const gone = [...results.flatMap((r) => r.removed), ...results.flatMap((r) => r.tableCleared)];
  const all = sorted([...gone, ...table.entries().map(([k]) => k)]);
  assert.deepEqual(all, added, "table");
  for (const r of results) {
    assert.ok(r.tableCleared.length + r.queueCleared > 0 || r.added.length < 50);
  }
});
