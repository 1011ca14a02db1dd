/**
 * Single-thread tests of stm/data: each structure against a plain model,
 * composition in transactions, blocking with timeouts, handles and bad
 * input.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Accumulator, Dllist, Hashtbl, Mvar, Queue, Stack, StmPromise } from "./mod.ts";
import { Retry, Xt } from "../mod.ts";
import { HandleError, SabreError, SharedHeap, TimeoutError } from "../../memory/mod.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

Deno.test("Queue and Stack: random operations match an array", () => {
  const heap = SharedHeap.create();
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.oneof(fc.integer({ min: -9, max: 9 }), fc.constant(null)), { maxLength: 60 }),
      (capacity, ops) => {
        const queue = Queue.create(heap, { capacity });
        const stack = Stack.create(heap, { capacity });
        const fifo: number[] = [];
        const lifo: number[] = [];
        for (const op of ops) {
          if (op === null) {
            assert.equal(queue.tryTake(), fifo.shift());
            assert.equal(stack.tryPop(), lifo.pop());
          } else {
            assert.equal(queue.tryAdd(op), fifo.length < capacity);
            if (fifo.length < capacity) fifo.push(op);
            assert.equal(stack.tryPush(op), lifo.length < capacity);
            if (lifo.length < capacity) lifo.push(op);
          }
          assert.equal(queue.length, fifo.length);
          assert.equal(stack.length, lifo.length);
          assert.equal(queue.tryPeek(), fifo[0]);
          assert.equal(stack.tryTop(), lifo.at(-1));
        }
      },
    ),
    { numRuns: 100 * STRESS },
  );
});

Deno.test("Queue and Stack: blocking forms wait, time out, and are woken", async () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap, { capacity: 1 });
  const stack = Stack.create(heap, { capacity: 1 });
  assert.throws(() => queue.take({ timeoutMs: 10 }), TimeoutError);
  assert.throws(() => stack.pop({ timeoutMs: 10 }), TimeoutError);
  queue.add(1);
  stack.push(1);
  assert.throws(() => queue.add(2, { timeoutMs: 10 }), TimeoutError);
  assert.throws(() => stack.push(2, { timeoutMs: 10 }), TimeoutError);
  const adding = queue.addAsync(2);
  assert.equal(queue.take(), 1);
  await adding;
  assert.equal(await queue.takeAsync(), 2);
  const popping = stack.popAsync();
  assert.equal(await popping, 1);
  const waiting = stack.popAsync({ timeoutMs: 5000 });
  setTimeout(() => stack.push(9), 10);
  assert.equal(await waiting, 9);
});

Deno.test("Mvar: put/take semantics, composition and blocking", async () => {
  const heap = SharedHeap.create();
  const m = Mvar.create(heap);
  assert.ok(m.isEmpty());
  assert.equal(m.tryTake(), undefined);
  assert.equal(m.tryPeek(), undefined);
  m.put(5);
  assert.equal(m.peek(), 5);
  assert.ok(!m.tryPut(6));
  assert.throws(() => m.put(6, { timeoutMs: 10 }), TimeoutError);
  assert.equal(m.take(), 5);
  assert.throws(() => m.take({ timeoutMs: 10 }), TimeoutError);
  const taking = m.takeAsync();
  await m.putAsync(7);
  assert.equal(await taking, 7);
  // Two Mvars taken together, or not at all.
  const a = Mvar.create(heap, 1);
  const b = Mvar.create(heap);
  assert.throws(
    () => Xt.commit((xt) => [a.xtTake(xt), b.xtTake(xt)], { timeoutMs: 10 }),
    TimeoutError,
  );
  assert.equal(a.tryPeek(), 1, "a was not taken alone");
  b.put(2);
  assert.deepEqual(Xt.commit((xt) => [a.xtTake(xt), b.xtTake(xt)]), [1, 2]);
  assert.throws(() => m.put("x" as never), TypeError);
});

Deno.test("StmPromise: resolves once; awaiters wake", async () => {
  const heap = SharedHeap.create();
  const p = StmPromise.create(heap);
  assert.equal(p.peek(), undefined);
  assert.throws(() => p.await({ timeoutMs: 10 }), TimeoutError);
  const later = p.awaitAsync();
  setTimeout(() => p.resolve(3), 5);
  assert.equal(await later, 3);
  assert.equal(p.await(), 3);
  assert.throws(() => p.resolve(4), SabreError);
  assert.throws(() => p.resolve(4), /already resolved: current value is 3/);
  assert.ok(!p.tryResolve(4));
  assert.ok(p.isResolved());
});

Deno.test("Accumulator: adds, consistent totals, set", () => {
  const heap = SharedHeap.create();
  const acc = Accumulator.create(heap, { shards: 3 });
  for (let i = 0; i < 100; i++) acc.add(i);
  acc.incr();
  acc.decr();
  assert.equal(acc.get(), 4950);
  acc.set(-1);
  assert.equal(acc.get(), -1);
  Xt.commit((xt) => acc.xtAdd(xt, 11));
  assert.equal(acc.get(), 10);
  Xt.commit((xt) => {
    acc.xtIncr(xt);
    acc.xtIncr(xt);
    acc.xtDecr(xt);
    assert.equal(acc.xtGet(xt), 11, "the transaction sees its own increments");
  });
  assert.equal(acc.get(), 11);
  // An attempt that retries leaves no increment behind.
  let attempts = 0;
  Xt.commit((xt) => {
    acc.xtIncr(xt);
    if (++attempts === 1) Retry.invalid();
  });
  assert.equal(attempts, 2);
  assert.equal(acc.get(), 12);
  assert.throws(() => Accumulator.create(heap, { shards: 0 }), /'shards'.*0/);
  assert.throws(() => acc.add(undefined as never), TypeError);
});

Deno.test("stm/data: handles round-trip and are checked", () => {
  const heap = SharedHeap.create();
  const q = Queue.create(heap, { capacity: 3 });
  q.add(4);
  assert.equal(Queue.attach(structuredClone(q.handle)).tryTake(), 4);
  const s = Stack.create(heap);
  assert.equal(Stack.attach(s.handle).capacity, Infinity);
  assert.equal(Stack.attach(Stack.create(heap, { capacity: 64 }).handle).capacity, 64);
  const m = Mvar.create(heap, 2);
  assert.equal(Mvar.attach(m.handle).tryPeek(), 2);
  const p = StmPromise.create(heap);
  p.resolve(1);
  assert.equal(StmPromise.attach(p.handle).peek(), 1);
  const acc = Accumulator.create(heap);
  acc.add(3);
  assert.equal(Accumulator.attach(acc.handle).get(), 3);
  assert.throws(() => Queue.attach(m.handle as never), HandleError);
  assert.throws(() => Mvar.attach({ ...m.handle, offset: q.handle.offset }), /holds no Mvar/);
  assert.throws(() => Queue.create(heap, { capacity: 0 }), RangeError);
  assert.throws(() => Stack.create(heap, { capacity: 1.5 }), RangeError);
});

Deno.test("stm/data: Xt.first over two queues takes from the first that has something", () => {
  const heap = SharedHeap.create();
  const urgent = Queue.create(heap, { capacity: 4 });
  const normal = Queue.create(heap, { capacity: 4 });
  normal.add(1);
  const take = Xt.first([(xt: Xt) => urgent.xtTake(xt), (xt: Xt) => normal.xtTake(xt)]);
  assert.equal(Xt.commit(take), 1);
  urgent.add(2);
  normal.add(3);
  assert.equal(Xt.commit(take), 2);
  assert.equal(Xt.commit(take), 3);
  assert.throws(() => Xt.commit(take, { timeoutMs: 10 }), TimeoutError);
  Retry.unless(true);
});

Deno.test("bad input: a misspelt creation option throws TypeError naming it, instead of leaving its default", () => {
  const heap = SharedHeap.create();
  const misspelt = (e: unknown) => e instanceof TypeError && /no field 'cap'/.test(e.message);
  assert.throws(() => Queue.create(heap, { cap: 3 } as never), misspelt);
  assert.throws(() => Stack.create(heap, { cap: 3 } as never), misspelt);
  assert.throws(
    () => Accumulator.create(heap, { shard: 3 } as never),
    (e) => e instanceof TypeError && /no field 'shard'.*'shards'/.test(e.message),
  );
  assert.throws(() => Queue.create(heap, 3 as never), /'options' must be an object/);
  assert.equal(Queue.create(heap, { capacity: 3 }).capacity, 3);
});

Deno.test("bad input: create without a heap, and a blocking call's misspelt option, name the structure and the call", async () => {
  for (
    const [name, create] of [
      ["Queue", () => Queue.create(undefined as never)],
      ["Stack", () => Stack.create(undefined as never)],
      ["Hashtbl", () => Hashtbl.create(undefined as never)],
      ["Dllist", () => Dllist.create(undefined as never)],
      ["Mvar", () => Mvar.create(undefined as never)],
      ["StmPromise", () => StmPromise.create(undefined as never)],
      ["Accumulator", () => Accumulator.create(undefined as never)],
    ] as const
  ) {
    assert.throws(create, (e) =>
      e instanceof TypeError &&
      e.message ===
        `Cannot create ${name} as 'heap' is not a SharedHeap: current value is undefined`);
  }
  const heap = SharedHeap.create();
  const queue = Queue.create(heap);
  const misspelt = (what: string) => (e: unknown) =>
    e instanceof TypeError && e.message.startsWith(`Cannot call ${what} as 'options' has no field`);
  assert.throws(() => queue.take({ timeout: 5 } as never), misspelt("Queue.take"));
  await assert.rejects(queue.takeAsync({ timeout: 5 } as never), misspelt("Queue.takeAsync"));
  assert.throws(() => Stack.create(heap).pop({ timeout: 5 } as never), misspelt("Stack.pop"));
  assert.throws(
    () => queue.take({ timeoutMs: -1 }),
    (e) => e instanceof RangeError && /^Cannot call Queue.take as 'timeoutMs'/.test(e.message),
  );
});

Deno.test("bad input: a blocking call that times out names itself in its TimeoutError", async () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap, { capacity: 1 });
  const stack = Stack.create(heap);
  const mvar = Mvar.create(heap);
  const promise = StmPromise.create(heap);
  const named = (what: string) => (e: unknown) =>
    e instanceof TimeoutError && e.message === `Cannot call ${what} as it timed out after 1 ms`;
  const options = { timeoutMs: 1 };
  assert.throws(() => queue.take(options), named("Queue.take"));
  await assert.rejects(queue.takeAsync(options), named("Queue.takeAsync"));
  queue.add(1);
  assert.throws(() => queue.add(2, options), named("Queue.add"));
  assert.throws(() => stack.pop(options), named("Stack.pop"));
  assert.throws(() => mvar.take(options), named("Mvar.take"));
  await assert.rejects(mvar.takeAsync(options), named("Mvar.takeAsync"));
  assert.throws(() => promise.await(options), named("StmPromise.await"));
  assert.equal(queue.take(), 1);
});
