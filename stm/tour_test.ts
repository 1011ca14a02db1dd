/**
 * kcas's tour, executable: the stack, the two- and three-stack queues,
 * composition, blocking pop and dequeue across workers, the leftist heap,
 * composable transfer with `Xt.first`, `snapshot`/`rollback`, the LRU
 * cache on Hashtbl and Dllist, the Michael-Scott queue with its post-commit
 * tail fix, and the rehashable hash table. The structures
 * (`_tour_test_workers.ts`) use only Loc, Xt, Op and Retry, with nodes in
 * heap blocks; the tests also check that memory comes back. (The dining
 * philosophers are in `stm/data/data_workers_test.ts`, read skew in
 * `stm_workers_test.ts`.)
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Loc, Op, Retry, Xt } from "./mod.ts";
import { Dllist, Hashtbl } from "./data/mod.ts";
import { SharedHeap } from "../memory/mod.ts";
import { runWorkers, spawnWorkers } from "../testing/harness.ts";
import {
  atomically,
  deleteMin,
  dequeue,
  enqueue,
  find,
  insert,
  leftist,
  type Lt,
  msDequeueAll,
  msEnqueue,
  msQueue,
  msTryDequeue,
  pop,
  type PopDequeueArgs,
  push,
  queue,
  queue3,
  type QueueWorkArgs,
  rehashTable,
  remove,
  removeAll,
  replace,
  stack,
  tableCapacity,
  tryDequeue,
  tryDequeue3,
  tryPop,
} from "./_tour_test_workers.ts";

const fixtures = new URL("./_tour_test_workers.ts", import.meta.url).href;
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

function inUse(heap: SharedHeap): number {
  for (let i = 0; i < 4; i++) heap.collect();
  const s = heap.stats();
  return s.liveBlocks - s.retiredBlocks;
}

Deno.test("tour: Op.atomically, and a transaction that waits for the answer", () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 0);
  a.set(6);
  assert.equal(a.get(), 6);
  const b = Loc.make(heap, 0);
  assert.ok(Op.atomically([Op.cas(a, 6, 10), Op.cas(b, 0, 52)]));
  const x = Loc.make(heap, 0);
  Xt.commit((xt) => xt.set(x, xt.get(b) - xt.get(a)));
  assert.equal(x.getAs((v) => (Retry.unless(v !== 0), `The answer is ${v}!`)), "The answer is 42!");
});

Deno.test("tour: the lock-free stack; composing pushes; moving between stack and queue", () => {
  const heap = SharedHeap.create();
  const s = stack(heap);
  const before = inUse(heap);
  atomically(heap, (xt, mem) => push(xt, mem, s, 101));
  assert.equal(Xt.commit((xt) => tryPop(xt, s)), 101);
  assert.equal(Xt.commit((xt) => tryPop(xt, s)), undefined);
  // Three pushes, one transaction.
  atomically(heap, (xt, mem) => {
    push(xt, mem, s, 3);
    push(xt, mem, s, 1);
    push(xt, mem, s, 4);
  });
  const q = queue(heap);
  atomically(heap, (xt, mem) => {
    const v = tryPop(xt, s);
    if (v !== undefined) enqueue(xt, mem, q, v);
  });
  assert.equal(atomically(heap, (xt, mem) => tryDequeue(xt, mem, q)), 4);
  assert.deepEqual([1, 3].map(() => Xt.commit((xt) => tryPop(xt, s))), [1, 3]);
  // The two-stack queue against an array.
  const model: number[] = [];
  for (let i = 0; i < 200; i++) {
    if (i % 3 === 2) {
      assert.equal(atomically(heap, (xt, mem) => tryDequeue(xt, mem, q)), model.shift());
    } else {
      atomically(heap, (xt, mem) => enqueue(xt, mem, q, i));
      model.push(i);
    }
  }
  while (model.length > 0) {
    assert.equal(atomically(heap, (xt, mem) => dequeue(xt, mem, q)), model.shift());
  }
  // A transaction that throws after pushing leaves nothing behind.
  assert.throws(() =>
    atomically(heap, (xt, mem) => {
      push(xt, mem, s, 9);
      throw new Error("changed my mind");
    }), /changed my mind/);
  assert.ok(inUse(heap) - before <= 4, `${inUse(heap) - before} blocks left`);
});

Deno.test("tour: blocking pop and dequeue in one transaction, from another worker", async () => {
  const heap = SharedHeap.create();
  const s = stack(heap);
  const q = queue(heap);
  const group = spawnWorkers<PopDequeueArgs, string>({
    module: fixtures,
    fn: "popAndDequeue",
    workers: 1,
    heap,
    args: { stack: s.handle, front: q.front.handle, back: q.back.handle },
    timeoutMs: 30_000,
  });
  for await (const _ of group.messages()) break; // it started
  // Never both at once: the worker stays blocked.
  atomically(heap, (xt, mem) => push(xt, mem, s, 2));
  const x = Xt.commit((xt) => pop(xt, s));
  atomically(heap, (xt, mem) => enqueue(xt, mem, q, x));
  // Now both: it can finish.
  atomically(heap, (xt, mem) => push(xt, mem, s, 4));
  assert.deepEqual(await group.results, ["I popped 4 and dequeued 2!"]);
});

Deno.test("tour: the leftist heap; remove_all gives [5, 4, 3, 1, 1]; matches sorting", () => {
  const heap = SharedHeap.create();
  const gt: Lt = (a, b) => a > b;
  const h = leftist(heap);
  const before = inUse(heap);
  atomically(heap, (xt, mem) => [3, 1, 4, 1, 5].forEach((x) => insert(xt, mem, gt, h, x)));
  assert.deepEqual(Xt.commit((xt) => removeAll(xt, gt, h)), [5, 4, 3, 1, 1]);
  assert.ok(inUse(heap) - before <= 2, `${inUse(heap) - before} blocks left`);
  const lt: Lt = (a, b) => a < b;
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer({ min: -50, max: 50 }), fc.constant(null))), (ops) => {
      const model: number[] = [];
      for (const op of ops) {
        if (op === null) {
          model.sort((a, b) => a - b);
          assert.equal(Xt.commit((xt) => deleteMin(xt, lt, h)), model.shift());
        } else {
          atomically(heap, (xt, mem) => insert(xt, mem, lt, h, op));
          model.push(op);
        }
      }
      assert.deepEqual(Xt.commit((xt) => removeAll(xt, lt, h)), model.sort((a, b) => a - b));
    }),
    { numRuns: 100 * STRESS },
  );
});

Deno.test("tour: transfer, optimistic and composable with snapshot/rollback and Xt.first", () => {
  const heap = SharedHeap.create();
  const [a, b] = [10, 52].map((v) => Loc.make(heap, v));
  // Abort by throwing: nothing is written.
  const transfer = (amount: number, source: Loc, target: Loc) => {
    try {
      Xt.commit((xt) => {
        if (xt.fetchAndAdd(source, -amount) < amount) throw new Error("exit");
        xt.fetchAndAdd(target, amount);
      });
    } catch (e) {
      if (!(e instanceof Error) || e.message !== "exit") throw e;
    }
  };
  transfer(100, a, b);
  assert.deepEqual([a.get(), b.get()], [10, 52]);
  transfer(10, a, b);
  assert.deepEqual([a.get(), b.get()], [0, 62]);
  // Composable: roll back and retry, so that Xt.first moves on.
  const [c1, c2, c3, d] = [10, 20, 30, 27].map((v) => Loc.make(heap, v));
  const xtTransfer = (amount: number, source: Loc, target: Loc) => (xt: Xt) => {
    const snap = xt.snapshot();
    if (xt.fetchAndAdd(source, -amount) < amount) {
      xt.rollback(snap);
      Retry.later();
    }
    xt.fetchAndAdd(target, amount);
  };
  Xt.commit(Xt.first([xtTransfer(15, c1, d), xtTransfer(15, c2, d), xtTransfer(15, c3, d)]));
  assert.deepEqual([c1, c2, c3, d].map((l) => l.get()), [10, 5, 30, 42]);
  // Post-compute and post-commit actions run once, after the commit.
  const sent: string[] = [];
  const n = Xt.commit((xt) => {
    xt.incr(a);
    xt.postCommit(() => sent.push("sent"));
    const v = xt.get(a);
    return () => v * 2;
  })();
  assert.equal(n, 2);
  assert.deepEqual(sent, ["sent"]);
});

Deno.test("tour: the LRU cache on Hashtbl and Dllist", () => {
  const heap = SharedHeap.create();
  const cache = {
    space: Loc.make(heap, 2, { kind: "i32" }),
    table: Hashtbl.create(heap), // key -> node address
    values: Hashtbl.create(heap), // key -> value
    order: Dllist.create(heap), // keys, most recent first
  };
  const getOpt = (xt: Xt, key: number): number | undefined => {
    const node = cache.table.xtGet(xt, key);
    if (node === undefined) return undefined;
    cache.order.xtMoveFirst(xt, cache.order.nodeAt(node));
    return cache.values.xtGet(xt, key);
  };
  const set = (xt: Xt, key: number, value: number): void => {
    const node = cache.table.xtGet(xt, key);
    if (node === undefined) {
      if (xt.update(cache.space, (n) => Math.max(0, n - 1)) === 0) {
        const evicted = cache.order.xtTryTakeLast(xt);
        if (evicted !== undefined) {
          cache.table.xtRemove(xt, evicted);
          cache.values.xtRemove(xt, evicted);
        }
      }
      cache.table.xtSet(xt, key, cache.order.xtAddFirst(xt, key).address);
    } else {
      cache.order.xtMoveFirst(xt, cache.order.nodeAt(node));
    }
    cache.values.xtSet(xt, key, value);
  };
  Xt.commit((xt) => set(xt, 101, 1));
  Xt.commit((xt) => set(xt, 42, 2));
  assert.equal(Xt.commit((xt) => getOpt(xt, 101)), 1);
  Xt.commit((xt) => set(xt, 2023, 3));
  assert.equal(Xt.commit((xt) => getOpt(xt, 42)), undefined);
  assert.deepEqual(cache.order.toArray(), [2023, 101]);
  // Against a model, and the table and list always agree.
  const model: number[] = [2023, 101]; // most recent first
  for (let i = 0; i < 300; i++) {
    const key = (i * 7919) % 5;
    if (i % 2 === 0) {
      Xt.commit((xt) => set(xt, key, i));
      const at = model.indexOf(key);
      if (at >= 0) model.splice(at, 1);
      else if (model.length === 2) model.pop();
      model.unshift(key);
    } else {
      const found = Xt.commit((xt) => getOpt(xt, key));
      const at = model.indexOf(key);
      assert.equal(found === undefined, at < 0);
      if (at >= 0) model.unshift(...model.splice(at, 1));
    }
    assert.deepEqual(cache.order.toArray(), model);
    assert.equal(cache.table.length, model.length);
  }
});

Deno.test("tour: the Michael-Scott queue with its post-commit tail fix", () => {
  const heap = SharedHeap.create();
  const q = msQueue(heap);
  const before = inUse(heap);
  atomically(heap, (xt, mem) => msEnqueue(xt, mem, q, 19));
  assert.equal(Xt.commit((xt) => msTryDequeue(xt, q)), 19);
  assert.equal(Xt.commit((xt) => msTryDequeue(xt, q)), undefined);
  // Several enqueues in one transaction: the tail lags inside it, then is fixed.
  atomically(heap, (xt, mem) => [1, 2, 3].forEach((v) => msEnqueue(xt, mem, q, v)));
  assert.equal(q.tail.get() !== q.head.get(), true);
  assert.deepEqual(msDequeueAll(q), [1, 2, 3]);
  assert.equal(q.tail.get(), q.head.get(), "tail caught up");
  assert.ok(inUse(heap) - before <= 4, `${inUse(heap) - before} blocks left`);
});

Deno.test("tour: the rehashable hash table grows, shrinks, and finds everything", () => {
  const heap = SharedHeap.create();
  const t = rehashTable(heap);
  const assoc: [number, number][] = [[1, 101], [2, 42], [3, 5], [4, 2023]];
  for (const [k, v] of assoc) atomically(heap, (xt, mem) => replace(xt, mem, t, k, v));
  for (const [k, v] of assoc) assert.equal(Xt.commit((xt) => find(xt, t, k)), v);
  for (const [k] of assoc) atomically(heap, (xt, mem) => remove(xt, mem, t, k));
  assert.equal(t.size.get(), 0);
  const before = inUse(heap);
  for (let k = 0; k < 300; k++) atomically(heap, (xt, mem) => replace(xt, mem, t, k, k * 3));
  assert.ok(tableCapacity(t) >= 1024, `grew to ${tableCapacity(t)}`);
  atomically(heap, (xt, mem) => replace(xt, mem, t, 7, -7));
  for (let k = 0; k < 300; k++) {
    assert.equal(Xt.commit((xt) => find(xt, t, k)), k === 7 ? -7 : k * 3);
  }
  for (let k = 0; k < 300; k++) atomically(heap, (xt, mem) => remove(xt, mem, t, k));
  assert.equal(t.size.get(), 0);
  assert.ok(tableCapacity(t) <= 8, `shrank to ${tableCapacity(t)}`);
  assert.ok(inUse(heap) - before <= 2 * tableCapacity(t) + 4, `${inUse(heap) - before} left`);
});

for (const kind of ["ms", "three"] as const) {
  Deno.test(`tour: ${kind === "ms" ? "Michael-Scott" : "three-stack"} queue, 4 producers and 4 consumers: every value once, in order`, async () => {
    const heap = SharedHeap.create();
    const locs = kind === "ms"
      ? (() => {
        const q = msQueue(heap);
        return [q.head, q.tail];
      })()
      : (() => {
        const q = queue3(heap);
        return [q.back, q.middle, q.front];
      })();
    const producers = 4;
    const perProducer = 300 * STRESS;
    const results = await runWorkers<QueueWorkArgs, number[]>({
      module: fixtures,
      fn: "queueWork",
      workers: 8,
      heap,
      args: { kind, locs: locs.map((l) => l.handle), producers, perProducer },
      timeoutMs: 60_000,
    });
    const expected: number[] = [];
    for (let p = 0; p < producers; p++) {
      for (let i = 0; i < perProducer; i++) expected.push(p * 1e6 + i);
    }
    assert.deepEqual(results.flat().sort((a, b) => a - b), expected);
    if (kind === "three") {
      const q3 = { back: locs[0], middle: locs[1], front: locs[2] };
      assert.equal(atomically(heap, (xt, mem) => tryDequeue3(xt, mem, q3)), undefined);
    }
  });
}
