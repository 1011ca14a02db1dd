/**
 * Single-thread tests of the node-based stm/data structures: unbounded
 * Queue and Stack, Hashtbl and Dllist against plain models (fast-check),
 * composition, and memory: what aborted, blocked, thrown or rolled-back
 * attempts allocated is freed, and removed nodes are reclaimed.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Accumulator, Dllist, DllistNode, Hashtbl, Mvar, Queue, Stack, StmPromise } from "./mod.ts";
import { Retry, Xt } from "../mod.ts";
import { DestroyedError, HandleError, SharedHeap, TimeoutError } from "../../memory/mod.ts";
import { assertEveryCallDestroyed, destroyedAs } from "../../testing/destroy.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

/** Blocks in use that are not waiting in a retire list, after reclamation. */
function inUse(heap: SharedHeap): number {
  for (let i = 0; i < 4; i++) heap.collect();
  const s = heap.stats();
  return s.liveBlocks - s.retiredBlocks;
}

Deno.test("unbounded Queue and Stack: random operations match an array", () => {
  const heap = SharedHeap.create();
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.double(), fc.constant(null), fc.constant(undefined)), {
        maxLength: 120,
      }),
      (ops) => {
        const queue = Queue.create(heap);
        const stack = Stack.create(heap);
        const fifo: number[] = [];
        const lifo: number[] = [];
        for (const op of ops) {
          if (op === null) {
            assert.equal(queue.tryTake(), fifo.shift());
            assert.equal(stack.tryPop(), lifo.pop());
          } else if (op === undefined) {
            // Two adds and a take in one transaction.
            Xt.commit((xt) => {
              queue.xtAdd(xt, 1);
              queue.xtAdd(xt, 2);
              stack.xtPush(xt, 3);
              assert.equal(queue.xtTryTake(xt), fifo.length > 0 ? fifo[0] : 1);
            });
            fifo.push(1, 2);
            fifo.shift();
            lifo.push(3);
          } else {
            assert.ok(queue.tryAdd(op));
            fifo.push(op);
            stack.push(op);
            lifo.push(op);
          }
          assert.equal(queue.length, fifo.length);
          assert.equal(stack.length, lifo.length);
          assert.equal(queue.tryPeek(), fifo[0]);
          assert.equal(stack.tryTop(), lifo.at(-1));
        }
        assert.equal(queue.capacity, Infinity);
      },
    ),
    { numRuns: 100 * STRESS },
  );
});

Deno.test("Hashtbl: random operations match a Map, through growth and shrinking", () => {
  const heap = SharedHeap.create();
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.constantFrom("set", "set", "remove", "get"),
          fc.oneof(fc.integer({ min: -40, max: 40 }), fc.constantFrom(NaN, -0, 0.5)),
          fc.double(),
        ),
        { maxLength: 300 },
      ),
      (ops) => {
        const table = Hashtbl.create(heap, { capacity: 2 });
        const model = new Map<number, number>();
        for (const [op, key, value] of ops) {
          if (op === "set") {
            table.set(key, value);
            model.set(key, value);
          } else if (op === "remove") {
            assert.ok(Object.is(table.remove(key), model.get(key)));
            model.delete(key);
          } else {
            assert.ok(Object.is(table.get(key), model.get(key)));
            assert.equal(table.has(key), model.has(key));
          }
          assert.equal(table.length, model.size);
        }
        const entries = table.entries();
        assert.equal(entries.length, model.size);
        for (const [k, v] of entries) assert.ok(Object.is(model.get(k), v));
        // Load stays bounded: the table grew with its contents.
        assert.ok(table.capacity * 2 >= model.size, `capacity ${table.capacity}`);
      },
    ),
    { numRuns: 60 * STRESS },
  );
});

Deno.test("Hashtbl: overwriting a key never rehashes; adding one does when the table is full", () => {
  const table = Hashtbl.create(SharedHeap.create(), { capacity: 1 });
  table.set(1, 1);
  table.set(2, 2);
  table.set(1, 1);
  table.set(1, 9);
  Xt.commit((xt) => table.xtSet(xt, 2, 8));
  assert.equal(table.capacity, 1);
  table.set(3, 3);
  assert.equal(table.capacity, 2);
  assert.deepEqual(table.entries().sort((a, b) => a[0] - b[0]), [[1, 9], [2, 8], [3, 3]]);
});

Deno.test("Hashtbl: grows and shrinks back, and reclaims its memory", () => {
  const heap = SharedHeap.create();
  const table = Hashtbl.create(heap, { capacity: 4 });
  table.set(-1, -1);
  table.remove(-1);
  const before = inUse(heap);
  for (let i = 0; i < 1000; i++) table.set(i, i * 2);
  assert.ok(table.capacity >= 512, `grew to ${table.capacity}`);
  assert.equal(Hashtbl.attach(table.handle).get(999), 1998);
  for (let i = 0; i < 1000; i++) assert.equal(table.remove(i), i * 2);
  assert.equal(table.length, 0);
  assert.ok(table.capacity <= 8, `shrank to ${table.capacity}`);
  table.set(-1, -1);
  table.remove(-1);
  // Extra buckets (a Loc and its cell each) when it stopped shrinking above 4.
  const slack = 2 * (table.capacity - 4) + 2;
  assert.ok(inUse(heap) - before <= slack, `${inUse(heap) - before} blocks left over`);
});

Deno.test("Dllist: random adds, takes, moves and removes match an array", () => {
  const heap = SharedHeap.create();
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.integer({ min: 0, max: 10 }), fc.nat(), fc.integer({ min: 0, max: 1 })),
        {
          maxLength: 80,
        },
      ),
      (ops) => {
        const lists = [Dllist.create(heap), Dllist.create(heap)];
        const models: DllistNode[][] = [[], []];
        // Handles of removed or taken nodes: their memory is reused by later adds.
        const dead: DllistNode[] = [];
        let next = 0;
        for (const [op, pick, which] of ops) {
          const list = lists[which];
          const model = models[which];
          const all = [...models[0], ...models[1]];
          const node = all.length > 0 ? all[pick % all.length] : undefined;
          const detach = (n: DllistNode) => {
            for (const m of models) {
              const i = m.indexOf(n);
              if (i >= 0) m.splice(i, 1);
            }
          };
          switch (op) {
            case 0:
              model.unshift(list.addFirst(next++));
              break;
            case 1:
              model.push(list.addLast(next++));
              break;
            case 2: {
              const taken = model.shift();
              assert.equal(list.tryTakeFirst(), taken?.value);
              if (taken !== undefined) dead.push(taken);
              break;
            }
            case 3: {
              const taken = model.pop();
              assert.equal(list.tryTakeLast(), taken?.value);
              if (taken !== undefined) dead.push(taken);
              break;
            }
            case 4:
              if (node === undefined) break;
              assert.equal(list.remove(node), true);
              detach(node);
              dead.push(node);
              break;
            case 5:
              if (node === undefined) break;
              assert.equal(list.moveFirst(node), true);
              detach(node);
              model.unshift(node);
              break;
            case 6:
              if (node === undefined) break;
              assert.equal(list.moveLast(node), true);
              detach(node);
              model.push(node);
              break;
            case 7:
              if (node === undefined) break;
              assert.equal(list.nodeAt(node.address).value, node.value);
              break;
            case 8:
            case 9: {
              // A stale handle, whose node may since have been reused: a no-op.
              if (dead.length === 0) break;
              const stale = dead[pick % dead.length];
              assert.equal(op === 8 ? list.remove(stale) : list.moveFirst(stale), false);
              break;
            }
            case 10:
              // Rarely, so that lists grow between clears.
              if (pick % 8 !== 0) break;
              list.clear();
              dead.push(...model.splice(0));
              break;
          }
          for (let i = 0; i < 2; i++) {
            assert.deepEqual(lists[i].toArray(), models[i].map((n) => n.value));
            assert.equal(lists[i].isEmpty(), models[i].length === 0);
            assert.equal(lists[i].length, models[i].length);
          }
        }
      },
    ),
    { numRuns: 100 * STRESS },
  );
});

Deno.test("unbounded structures: blocking forms wait, time out, and are woken", async () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap);
  const stack = Stack.create(heap);
  const list = Dllist.create(heap);
  assert.throws(() => queue.take({ timeoutMs: 10 }), TimeoutError);
  assert.throws(() => stack.pop({ timeoutMs: 10 }), TimeoutError);
  assert.throws(() => list.takeLast({ timeoutMs: 10 }), TimeoutError);
  const taking = queue.takeAsync({ timeoutMs: 5000 });
  const popping = stack.popAsync({ timeoutMs: 5000 });
  setTimeout(() => {
    queue.add(5);
    stack.push(6);
  }, 10);
  assert.equal(await taking, 5);
  assert.equal(await popping, 6);
  list.addFirst(1);
  assert.equal(list.takeLast(), 1);
});

Deno.test("peek, top and the async takes wait, time out, and are woken without taking", async () => {
  const heap = SharedHeap.create();
  for (const capacity of [Infinity, 2]) {
    const queue = Queue.create(heap, { capacity });
    const stack = Stack.create(heap, { capacity });
    assert.throws(() => queue.peek({ timeoutMs: 10 }), TimeoutError);
    assert.throws(() => stack.top({ timeoutMs: 10 }), TimeoutError);
    await assert.rejects(queue.peekAsync({ timeoutMs: 10 }), TimeoutError);
    await assert.rejects(stack.topAsync({ timeoutMs: 10 }), TimeoutError);
    const peeking = queue.peekAsync({ timeoutMs: 5000 });
    const topping = stack.topAsync({ timeoutMs: 5000 });
    setTimeout(() => {
      Xt.commit((xt) => {
        queue.xtAdd(xt, 1);
        queue.xtAdd(xt, 2);
        stack.xtPush(xt, 1);
        stack.xtPush(xt, 2);
      });
    }, 10);
    assert.equal(await peeking, 1);
    assert.equal(await topping, 2);
    assert.ok(queue.peek() === 1 && stack.top() === 2);
    assert.ok(queue.length === 2 && stack.length === 2, "peeking took nothing");
    assert.deepEqual(Xt.commit((xt) => [queue.xtPeek(xt), stack.xtTop(xt)]), [1, 2]);
  }
  // pushAsync waits while a bounded stack is full.
  const full = Stack.create(heap, { capacity: 1 });
  full.push(1);
  await assert.rejects(full.pushAsync(2, { timeoutMs: 10 }), TimeoutError);
  const pushing = full.pushAsync(2, { timeoutMs: 5000 });
  setTimeout(() => full.pop(), 10);
  await pushing;
  assert.ok(full.tryPop() === 2 && full.tryPop() === undefined);
  const list = Dllist.create(heap);
  await assert.rejects(list.takeFirstAsync({ timeoutMs: 10 }), TimeoutError);
  await assert.rejects(list.takeLastAsync({ timeoutMs: 10 }), TimeoutError);
  const first = list.takeFirstAsync({ timeoutMs: 5000 });
  const last = list.takeLastAsync({ timeoutMs: 5000 });
  setTimeout(() => {
    list.addLast(1);
    list.addLast(2);
  }, 10);
  assert.deepEqual([await first, await last].sort(), [1, 2]);
  assert.ok(list.isEmpty());
  const mvar = Mvar.create(heap);
  await assert.rejects(mvar.peekAsync({ timeoutMs: 10 }), TimeoutError);
  const peeking = mvar.peekAsync({ timeoutMs: 5000 });
  setTimeout(() => mvar.put(7), 10);
  assert.equal(await peeking, 7);
  assert.equal(mvar.tryPeek(), 7, "peeking took nothing");
});

Deno.test("clear empties Queue, Stack and Hashtbl at one instant, gives their memory back, and composes", () => {
  const heap = SharedHeap.create();
  const baseline = inUse(heap);
  for (const capacity of [Infinity, 8]) {
    const queue = Queue.create(heap, { capacity });
    const stack = Stack.create(heap, { capacity });
    const table = Hashtbl.create(heap, { capacity: 2 });
    const fill = () => {
      for (let i = 0; i < 6; i++) {
        Xt.commit((xt) => {
          queue.xtAdd(xt, i);
          stack.xtPush(xt, i);
        });
      }
      // Takes move nodes between the queue's three lists: clear empties all of them.
      assert.equal(queue.take(), 0);
      queue.add(6);
      for (let i = 0; i < 40; i++) table.set(i, i * 2);
    };
    // Once through, so that the per-transaction allocation markers exist.
    fill();
    queue.clear();
    stack.clear();
    table.clear();
    const empty = inUse(heap);
    fill();
    assert.ok(table.capacity > 2);
    // A clear in a transaction that does not commit changes nothing.
    assert.throws(() =>
      Xt.commit((xt) => {
        queue.xtClear(xt);
        stack.xtClear(xt);
        table.xtClear(xt);
        throw new Error("no");
      }), /no/);
    assert.deepEqual([queue.length, stack.length, table.length], [6, 6, 40]);
    // Cleared together with a write that the same transaction makes after it.
    Xt.commit((xt) => {
      queue.xtClear(xt);
      stack.xtClear(xt);
      table.xtClear(xt);
      queue.xtAdd(xt, 100);
      table.xtSet(xt, 100, 1);
    });
    assert.deepEqual([queue.length, stack.length], [1, 0]);
    assert.ok(queue.tryTake() === 100 && queue.tryTake() === undefined);
    assert.equal(stack.tryPop(), undefined);
    assert.deepEqual(table.entries(), [[100, 1]]);
    assert.equal(table.capacity, 2, "back to the capacity it was created with");
    table.remove(100);
    assert.equal(inUse(heap), empty, "the cleared nodes and entries went back to the heap");
    queue.clear();
    stack.clear();
    table.clear();
    assert.equal(inUse(heap), empty, "clearing empty structures allocates nothing");
    fill();
    queue.clear();
    stack.clear();
    table.clear();
    assert.deepEqual([queue.length, stack.length, table.length], [0, 0, 0]);
    assert.equal(inUse(heap), empty);
    // Still usable.
    queue.add(1);
    stack.push(2);
    table.set(3, 4);
    assert.ok(queue.take() === 1 && stack.pop() === 2 && table.remove(3) === 4);
  }
  assert.ok(inUse(heap) > baseline);
});

Deno.test("allocations of attempts that do not commit are freed; removed nodes are reclaimed", () => {
  const heap = SharedHeap.create();
  const queue = Queue.create(heap);
  const stack = Stack.create(heap);
  const table = Hashtbl.create(heap);
  const list = Dllist.create(heap);
  const round = () => {
    // Thrown after allocating: nothing commits.
    assert.throws(() =>
      Xt.commit((xt) => {
        queue.xtAdd(xt, 1);
        stack.xtPush(xt, 1);
        table.xtSet(xt, 1, 1);
        list.xtAddLast(xt, 1);
        throw new Error("no");
      }), /no/);
    // A rolled-back alternative that allocated, then one that commits.
    Xt.commit(Xt.first([
      (xt: Xt) => {
        stack.xtPush(xt, 2);
        list.xtAddFirst(xt, 2);
        table.xtSet(xt, 2, 2);
        Retry.later();
      },
      (xt: Xt) => {
        queue.xtAdd(xt, 3);
        stack.xtPush(xt, 3);
      },
    ]));
    // Rollback inside one attempt, after an earlier allocation that stays.
    Xt.commit((xt) => {
      list.xtAddLast(xt, 4);
      const snap = xt.snapshot();
      list.xtAddLast(xt, 5);
      queue.xtAdd(xt, 5);
      xt.rollback(snap);
    });
    // Blocked, then timed out, after allocating.
    assert.throws(
      () =>
        Xt.commit((xt) => {
          stack.xtPush(xt, 6);
          Retry.later();
        }, { timeoutMs: 1 }),
      TimeoutError,
    );
    assert.equal(queue.tryTake(), 3);
    assert.equal(stack.tryPop(), 3);
    assert.equal(list.tryTakeFirst(), 4);
    assert.ok(queue.tryTake() === undefined && stack.tryPop() === undefined);
    assert.ok(list.isEmpty() && table.length === 0);
  };
  round();
  const before = inUse(heap);
  for (let i = 0; i < 50; i++) round();
  assert.ok(inUse(heap) - before <= 8, `${inUse(heap) - before} blocks leaked`);
});

Deno.test("Dllist: a value that is not a node, or a node of another heap, throws a clear error and changes nothing", () => {
  const heap = SharedHeap.create();
  const other = SharedHeap.create();
  // The other heap's nodes lie where this heap has no nodes.
  for (let i = 0; i < 2000; i++) other.allocate(64);
  const list = Dllist.create(heap);
  const foreign = Dllist.create(other);
  list.addLast(1);
  const stranger = foreign.addLast(10);
  for (const bad of [undefined, null, 16, "node", {}, { locs: {}, gen: 0 }]) {
    const node = bad as unknown as DllistNode;
    assert.throws(() => list.remove(node), { name: "TypeError", message: /DllistNode/ });
    assert.throws(() => list.moveFirst(node), { name: "TypeError", message: /DllistNode/ });
    assert.throws(() => Xt.commit((xt) => list.xtMoveLast(xt, node)), {
      name: "TypeError",
      message: /DllistNode/,
    });
  }
  assert.throws(() => list.remove(stranger), { name: "RangeError", message: /another heap/ });
  assert.throws(() => list.moveFirst(stranger), { name: "RangeError", message: /another heap/ });
  assert.throws(() => list.moveLast(stranger), { name: "RangeError", message: /another heap/ });
  assert.deepEqual(list.toArray(), [1]);
  assert.deepEqual(foreign.toArray(), [10]);
  assert.throws(() => list.nodeAt("32" as unknown as number), { message: /"32"/ });
});

Deno.test("Dllist: nodeAt(address, generation) refuses a node whose memory was reused", () => {
  const heap = SharedHeap.create();
  const list = Dllist.create(heap);
  const old = list.addLast(1);
  const { address, generation } = old;
  assert.equal(list.nodeAt(address, generation).value, 1);
  assert.ok(list.remove(old));
  assert.throws(() => list.nodeAt(address, generation), HandleError);
  assert.throws(() => list.nodeAt(address), HandleError); // free, not in a list
  const reused = list.addLast(2);
  assert.equal(reused.address, address); // the same memory, a later generation
  assert.equal(reused.generation, generation + 1);
  assert.throws(() => list.nodeAt(address, generation), /of generation 0 was removed/);
  assert.equal(list.nodeAt(address).value, 2);
  assert.equal(list.nodeAt(address, reused.generation).value, 2);
  assert.throws(() => list.nodeAt(list.handle.offset), HandleError);
});

Deno.test("Dllist: nodeAt refuses a generation that is not an integer", () => {
  const list = Dllist.create(SharedHeap.create());
  const node = list.addLast(1);
  assert.throws(() => list.nodeAt(node.address, "0" as unknown as number), TypeError);
  assert.throws(() => list.nodeAt(node.address, 0.5), /not an integer: current value is 0.5/);
});

Deno.test("destroy gives back every block of each stm/data structure; attach and a second destroy refuse", () => {
  const heap = SharedHeap.create();
  type Made = { destroy(): void; readonly handle: unknown };
  const makers: [string, () => Made, (handle: never) => unknown][] = [
    ["unbounded Queue", () => {
      const q = Queue.create(heap);
      for (let i = 0; i < 20; i++) q.add(i);
      q.take(); // moves the rest to front
      q.add(99); // and one in back
      return q;
    }, Queue.attach],
    ["bounded Queue", () => {
      const q = Queue.create(heap, { capacity: 4 });
      q.add(1);
      return q;
    }, Queue.attach],
    ["unbounded Stack", () => {
      const st = Stack.create(heap);
      for (let i = 0; i < 20; i++) st.push(i);
      return st;
    }, Stack.attach],
    ["bounded Stack", () => {
      const st = Stack.create(heap, { capacity: 4 });
      st.push(1);
      return st;
    }, Stack.attach],
    ["Hashtbl", () => {
      const t = Hashtbl.create(heap, { capacity: 2 });
      for (let i = 0; i < 50; i++) t.set(i, i);
      return t;
    }, Hashtbl.attach],
    ["Mvar", () => Mvar.create(heap, 3), Mvar.attach],
    ["StmPromise", () => {
      const p = StmPromise.create(heap);
      p.resolve(1);
      return p;
    }, StmPromise.attach],
    ["Accumulator", () => {
      const a = Accumulator.create(heap, { shards: 4 });
      a.add(3);
      return a;
    }, Accumulator.attach],
  ];
  // Once through: the per-transaction allocation markers come to exist.
  for (const [, make] of makers) make().destroy();
  for (const [name, make, attach] of makers) {
    const before = inUse(heap);
    const made = make();
    const handle = made.handle;
    made.destroy();
    assert.equal(inUse(heap), before, `${name}: every block went back`);
    assert.throws(() => made.destroy(), DestroyedError, name);
    assert.throws(() => attach(handle as never), HandleError, name);
  }
  // A Dllist's nodes go to the heap's free lists, for later lists to reuse.
  const round = () => {
    const list = Dllist.create(heap);
    const nodes = [1, 2, 3, 4, 5].map((v) => list.addLast(v));
    list.remove(nodes[2]);
    const handle = list.handle;
    list.destroy();
    const other = Dllist.create(heap);
    assert.ok(nodes.every((node) => !other.remove(node)), "nodes were removed");
    other.destroy();
    assert.throws(() => list.destroy(), DestroyedError);
    assert.throws(() => Dllist.attach(handle), HandleError);
  };
  round();
  round();
  const steady = inUse(heap);
  for (let i = 0; i < 5; i++) round();
  assert.equal(inUse(heap), steady, "Dllist: sentinels and records went back, nodes were reused");
});

/** A structure, ways to make it, and a call of each public method and getter of its objects. */
interface DestroyedRow {
  readonly structure: string;
  readonly makers: readonly (() => { destroy(): void })[];
  readonly calls: Readonly<Record<string, (made: never) => unknown>>;
}

/** A row; `_type`, the class, only types the calls' argument. */
function destroyedRow<T extends { destroy(): void }>(
  structure: string,
  _type: { readonly prototype: T },
  makers: readonly (() => T)[],
  calls: Readonly<Record<string, (made: T) => unknown>>,
): DestroyedRow {
  return { structure, makers, calls };
}

Deno.test("destroyed structures: every method and getter of the object throws DestroyedError, and async ones reject", async () => {
  const heap = SharedHeap.create();
  // Nodes of a live list, for the Dllist calls that take one.
  const live = Dllist.create(heap);
  const node = live.addLast(1);
  const rows: DestroyedRow[] = [
    destroyedRow("Accumulator", Accumulator, [() => {
      const a = Accumulator.create(heap, { shards: 2 });
      a.add(1);
      return a;
    }], {
      handle: (a) => a.handle,
      add: (a) => a.add(1),
      incr: (a) => a.incr(),
      decr: (a) => a.decr(),
      get: (a) => a.get(),
      set: (a) => a.set(1),
      xtAdd: (a) => Xt.commit((xt) => a.xtAdd(xt, 1)),
      xtIncr: (a) => Xt.commit((xt) => a.xtIncr(xt)),
      xtDecr: (a) => Xt.commit((xt) => a.xtDecr(xt)),
      xtGet: (a) => Xt.commit((xt) => a.xtGet(xt)),
      xtSet: (a) => Xt.commit((xt) => a.xtSet(xt, 1)),
    }),
    destroyedRow("Mvar", Mvar, [() => Mvar.create(heap), () => Mvar.create(heap, 1)], {
      handle: (m) => m.handle,
      isEmpty: (m) => m.isEmpty(),
      put: (m) => m.put(1, { timeoutMs: 1 }),
      putAsync: (m) => m.putAsync(1, { timeoutMs: 1 }),
      tryPut: (m) => m.tryPut(1),
      take: (m) => m.take({ timeoutMs: 1 }),
      takeAsync: (m) => m.takeAsync({ timeoutMs: 1 }),
      tryTake: (m) => m.tryTake(),
      peek: (m) => m.peek({ timeoutMs: 1 }),
      peekAsync: (m) => m.peekAsync({ timeoutMs: 1 }),
      tryPeek: (m) => m.tryPeek(),
      xtPut: (m) => Xt.commit((xt) => m.xtPut(xt, 1)),
      xtTryPut: (m) => Xt.commit((xt) => m.xtTryPut(xt, 1)),
      xtTake: (m) => Xt.commit((xt) => m.xtTake(xt)),
      xtTryTake: (m) => Xt.commit((xt) => m.xtTryTake(xt)),
      xtPeek: (m) => Xt.commit((xt) => m.xtPeek(xt)),
      xtTryPeek: (m) => Xt.commit((xt) => m.xtTryPeek(xt)),
      xtIsEmpty: (m) => Xt.commit((xt) => m.xtIsEmpty(xt)),
    }),
    destroyedRow("StmPromise", StmPromise, [() => StmPromise.create(heap), () => {
      const p = StmPromise.create(heap);
      p.resolve(1);
      return p;
    }], {
      handle: (p) => p.handle,
      isResolved: (p) => p.isResolved(),
      tryResolve: (p) => p.tryResolve(1),
      resolve: (p) => p.resolve(1),
      await: (p) => p.await({ timeoutMs: 1 }),
      awaitAsync: (p) => p.awaitAsync({ timeoutMs: 1 }),
      peek: (p) => p.peek(),
      xtTryResolve: (p) => Xt.commit((xt) => p.xtTryResolve(xt, 1)),
      xtAwait: (p) => Xt.commit((xt) => p.xtAwait(xt)),
      xtPeek: (p) => Xt.commit((xt) => p.xtPeek(xt)),
      xtIsResolved: (p) => Xt.commit((xt) => p.xtIsResolved(xt)),
    }),
    destroyedRow("Queue", Queue, [() => {
      const q = Queue.create(heap);
      for (let i = 0; i < 5; i++) q.add(i);
      q.take(); // the rest moves to front
      q.add(9); // and one goes to back
      return q;
    }, () => {
      const q = Queue.create(heap, { capacity: 2 });
      q.add(1);
      return q;
    }], {
      handle: (q) => q.handle,
      capacity: (q) => q.capacity,
      length: (q) => q.length,
      add: (q) => q.add(1, { timeoutMs: 1 }),
      addAsync: (q) => q.addAsync(1, { timeoutMs: 1 }),
      tryAdd: (q) => q.tryAdd(1),
      take: (q) => q.take({ timeoutMs: 1 }),
      takeAsync: (q) => q.takeAsync({ timeoutMs: 1 }),
      tryTake: (q) => q.tryTake(),
      peek: (q) => q.peek({ timeoutMs: 1 }),
      peekAsync: (q) => q.peekAsync({ timeoutMs: 1 }),
      tryPeek: (q) => q.tryPeek(),
      clear: (q) => q.clear(),
      xtLength: (q) => Xt.commit((xt) => q.xtLength(xt)),
      xtAdd: (q) => Xt.commit((xt) => q.xtAdd(xt, 1)),
      xtTryAdd: (q) => Xt.commit((xt) => q.xtTryAdd(xt, 1)),
      xtTake: (q) => Xt.commit((xt) => q.xtTake(xt)),
      xtTryTake: (q) => Xt.commit((xt) => q.xtTryTake(xt)),
      xtPeek: (q) => Xt.commit((xt) => q.xtPeek(xt)),
      xtTryPeek: (q) => Xt.commit((xt) => q.xtTryPeek(xt)),
      xtClear: (q) => Xt.commit((xt) => q.xtClear(xt)),
    }),
    destroyedRow("Stack", Stack, [() => {
      const st = Stack.create(heap);
      for (let i = 0; i < 5; i++) st.push(i);
      return st;
    }, () => {
      const st = Stack.create(heap, { capacity: 2 });
      st.push(1);
      return st;
    }], {
      handle: (st) => st.handle,
      capacity: (st) => st.capacity,
      length: (st) => st.length,
      push: (st) => st.push(1, { timeoutMs: 1 }),
      pushAsync: (st) => st.pushAsync(1, { timeoutMs: 1 }),
      tryPush: (st) => st.tryPush(1),
      pop: (st) => st.pop({ timeoutMs: 1 }),
      popAsync: (st) => st.popAsync({ timeoutMs: 1 }),
      tryPop: (st) => st.tryPop(),
      top: (st) => st.top({ timeoutMs: 1 }),
      topAsync: (st) => st.topAsync({ timeoutMs: 1 }),
      tryTop: (st) => st.tryTop(),
      clear: (st) => st.clear(),
      xtLength: (st) => Xt.commit((xt) => st.xtLength(xt)),
      xtPush: (st) => Xt.commit((xt) => st.xtPush(xt, 1)),
      xtTryPush: (st) => Xt.commit((xt) => st.xtTryPush(xt, 1)),
      xtPop: (st) => Xt.commit((xt) => st.xtPop(xt)),
      xtTryPop: (st) => Xt.commit((xt) => st.xtTryPop(xt)),
      xtTop: (st) => Xt.commit((xt) => st.xtTop(xt)),
      xtTryTop: (st) => Xt.commit((xt) => st.xtTryTop(xt)),
      xtClear: (st) => Xt.commit((xt) => st.xtClear(xt)),
    }),
    destroyedRow("Hashtbl", Hashtbl, [() => {
      const t = Hashtbl.create(heap, { capacity: 2 });
      for (let i = 0; i < 20; i++) t.set(i, i);
      return t;
    }], {
      handle: (t) => t.handle,
      length: (t) => t.length,
      capacity: (t) => t.capacity,
      get: (t) => t.get(1),
      has: (t) => t.has(1),
      set: (t) => t.set(1, 2),
      remove: (t) => t.remove(1),
      clear: (t) => t.clear(),
      entries: (t) => t.entries(),
      xtLength: (t) => Xt.commit((xt) => t.xtLength(xt)),
      xtGet: (t) => Xt.commit((xt) => t.xtGet(xt, 1)),
      xtHas: (t) => Xt.commit((xt) => t.xtHas(xt, 1)),
      xtSet: (t) => Xt.commit((xt) => t.xtSet(xt, 1, 2)),
      xtRemove: (t) => Xt.commit((xt) => t.xtRemove(xt, 1)),
      xtEntries: (t) => Xt.commit((xt) => t.xtEntries(xt)),
      xtClear: (t) => Xt.commit((xt) => t.xtClear(xt)),
    }),
    destroyedRow("Dllist", Dllist, [() => {
      const list = Dllist.create(heap);
      for (let i = 0; i < 5; i++) list.addLast(i);
      return list;
    }], {
      handle: (l) => l.handle,
      length: (l) => l.length,
      nodeAt: (l) => l.nodeAt(node.address, node.generation),
      addFirst: (l) => l.addFirst(1),
      addLast: (l) => l.addLast(1),
      remove: (l) => l.remove(node),
      moveFirst: (l) => l.moveFirst(node),
      moveLast: (l) => l.moveLast(node),
      tryTakeFirst: (l) => l.tryTakeFirst(),
      tryTakeLast: (l) => l.tryTakeLast(),
      takeFirst: (l) => l.takeFirst({ timeoutMs: 1 }),
      takeLast: (l) => l.takeLast({ timeoutMs: 1 }),
      takeFirstAsync: (l) => l.takeFirstAsync({ timeoutMs: 1 }),
      takeLastAsync: (l) => l.takeLastAsync({ timeoutMs: 1 }),
      isEmpty: (l) => l.isEmpty(),
      toArray: (l) => l.toArray(),
      clear: (l) => l.clear(),
      xtAddFirst: (l) => Xt.commit((xt) => l.xtAddFirst(xt, 1)),
      xtAddLast: (l) => Xt.commit((xt) => l.xtAddLast(xt, 1)),
      xtRemove: (l) => Xt.commit((xt) => l.xtRemove(xt, node)),
      xtMoveFirst: (l) => Xt.commit((xt) => l.xtMoveFirst(xt, node)),
      xtMoveLast: (l) => Xt.commit((xt) => l.xtMoveLast(xt, node)),
      xtTryTakeFirst: (l) => Xt.commit((xt) => l.xtTryTakeFirst(xt)),
      xtTryTakeLast: (l) => Xt.commit((xt) => l.xtTryTakeLast(xt)),
      xtTakeFirst: (l) => Xt.commit((xt) => l.xtTakeFirst(xt)),
      xtTakeLast: (l) => Xt.commit((xt) => l.xtTakeLast(xt)),
      xtIsEmpty: (l) => Xt.commit((xt) => l.xtIsEmpty(xt)),
      xtToArray: (l) => Xt.commit((xt) => l.xtToArray(xt)),
      xtLength: (l) => Xt.commit((xt) => l.xtLength(xt)),
      xtClear: (l) => Xt.commit((xt) => l.xtClear(xt)),
    }),
  ];
  for (const { structure, makers, calls } of rows) {
    for (const make of makers) {
      const made = make();
      made.destroy();
      await assertEveryCallDestroyed(made, structure, calls);
      assert.throws(() => made.destroy(), destroyedAs(structure, "destroy"), structure);
      assert.throws(() => made.destroy(), /destroyed already/, structure);
    }
  }
  // A node is a snapshot: it has no methods that reach the list, so it needs no check.
  assert.deepEqual(Reflect.ownKeys(DllistNode.prototype), ["constructor"]);
  assert.deepEqual(live.toArray(), [1], "the live list was not touched");
});

Deno.test("destroyed structures: destroy() of a second object attached to the handle throws DestroyedError and frees nothing", () => {
  const heap = SharedHeap.create();
  type Made = { destroy(): void; readonly handle: unknown };
  const rows: [string, () => Made, (handle: never) => Made][] = [
    ["Accumulator", () => Accumulator.create(heap), Accumulator.attach],
    ["Mvar", () => Mvar.create(heap, 1), Mvar.attach],
    ["StmPromise", () => StmPromise.create(heap), StmPromise.attach],
    ["Queue", () => Queue.create(heap), Queue.attach],
    ["Queue", () => Queue.create(heap, { capacity: 2 }), Queue.attach],
    ["Stack", () => Stack.create(heap), Stack.attach],
    ["Stack", () => Stack.create(heap, { capacity: 2 }), Stack.attach],
    ["Hashtbl", () => Hashtbl.create(heap), Hashtbl.attach],
    ["Dllist", () => Dllist.create(heap), Dllist.attach],
  ];
  for (const [structure, make, attach] of rows) {
    const first = make();
    const second = attach(first.handle as never);
    first.destroy();
    const after = inUse(heap);
    assert.throws(() => second.destroy(), destroyedAs(structure, "destroy"), structure);
    assert.equal(inUse(heap), after, `${structure}: the failed destroy() freed nothing`);
    // That object is done too: its own calls now throw.
    assert.throws(() => second.handle, destroyedAs(structure), structure);
    assert.throws(() => second.destroy(), destroyedAs(structure, "destroy"), structure);
  }
});

Deno.test("bad input: a misspelt Hashtbl option throws TypeError naming it", () => {
  const heap = SharedHeap.create();
  assert.throws(
    () => Hashtbl.create(heap, { cap: 8 } as never),
    (e) => e instanceof TypeError && /no field 'cap'.*'capacity'/.test(e.message),
  );
});

Deno.test("bad input: a Hashtbl key that is not a number is named as the key", () => {
  const table = Hashtbl.create(SharedHeap.create());
  assert.throws(
    () => table.set("a" as never, 1),
    (e) =>
      e instanceof TypeError && /the key must be a number: current value is "a"/.test(e.message),
  );
  assert.throws(() => table.set(1, "b" as never), /the value must be a number/);
});
