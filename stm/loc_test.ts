/**
 * Single-thread tests of Loc: every operation against a model (fast-check),
 * each kind's value rules, handles and addresses, bad input, and memory
 * reclamation of replaced cells.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Loc, type LocKind, Retry, Xt } from "./mod.ts";
import { DestroyedError, HandleError, SharedHeap, TimeoutError } from "../memory/mod.ts";
import { KERNEL_SLOW } from "../memory/_kernel.ts";
import { heapWithKernel } from "../testing/kernel.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

type LocOp =
  | { op: "get"; i: number }
  | { op: "set"; i: number; v: number }
  | { op: "exchange"; i: number; v: number }
  | { op: "compareAndSet"; i: number; expected: number; v: number }
  | { op: "fetchAndAdd"; i: number; v: number }
  | { op: "incr"; i: number }
  | { op: "decr"; i: number }
  | { op: "update"; i: number; v: number }
  | { op: "modify"; i: number; v: number }
  | { op: "getAs"; i: number };

function valueArb(kind: LocKind): fc.Arbitrary<number> {
  switch (kind) {
    case "i32":
      return fc.oneof(fc.integer({ min: -3, max: 3 }), fc.integer());
    case "ref":
      return fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0x7fffffff }));
    default:
      return fc.oneof(
        fc.integer({ min: -3, max: 3 }),
        fc.double(),
        fc.constantFrom(NaN, -0, Infinity, -Infinity, 0.1 + 0.2),
        // The kernel's answer for "take the general path", which a value may equal.
        fc.constantFrom(KERNEL_SLOW),
      );
  }
}

function opArb(kind: LocKind, locs: number): fc.Arbitrary<LocOp> {
  const i = fc.integer({ min: 0, max: locs - 1 });
  const v = valueArb(kind);
  const small = fc.integer({ min: -5, max: 5 });
  return fc.oneof(
    fc.record({ op: fc.constant("get" as const), i }),
    fc.record({ op: fc.constant("set" as const), i, v }),
    fc.record({ op: fc.constant("exchange" as const), i, v }),
    fc.record({ op: fc.constant("compareAndSet" as const), i, expected: v, v }),
    fc.record({
      op: fc.constant("fetchAndAdd" as const),
      i,
      v: kind === "ref" ? fc.nat(5) : small,
    }),
    fc.record({ op: fc.constant("incr" as const), i }),
    fc.record({ op: fc.constant("decr" as const), i }),
    fc.record({ op: fc.constant("update" as const), i, v }),
    fc.record({ op: fc.constant("modify" as const), i, v }),
    fc.record({ op: fc.constant("getAs" as const), i }),
  );
}

const sameValueZero = (a: number, b: number) => a === b || (a !== a && b !== b);

/** What the kind makes of a sum. */
function addModel(kind: LocKind, a: number, b: number): number | RangeError {
  if (kind === "i32") return (a + b) | 0;
  const sum = a + b;
  if (kind === "ref" && (sum < 0 || sum > 0x7fffffff)) return new RangeError("out of range");
  return sum;
}

for (const kind of ["f64", "i32", "ref"] as const) {
  for (const kernel of [true, false]) {
    const how = kernel ? "" : ", JavaScript paths only (no kernel)";
    Deno.test(`model: random Loc operations on "${kind}" locations match plain numbers${how}`, () => {
      const heap = heapWithKernel(kernel);
      fc.assert(
        fc.property(fc.array(opArb(kind, 3), { minLength: 1, maxLength: 60 }), (ops) => {
          const locs = [0, 1, 2].map(() => Loc.make(heap, 0, { kind }));
          const model = [0, 0, 0];
          for (const o of ops) {
            const loc = locs[o.i];
            const old = model[o.i];
            switch (o.op) {
              case "get":
                assert.ok(Object.is(loc.get(), old));
                break;
              case "set":
                loc.set(o.v);
                model[o.i] = o.v;
                break;
              case "exchange":
                assert.ok(Object.is(loc.exchange(o.v), old));
                model[o.i] = o.v;
                break;
              case "compareAndSet": {
                const hit = sameValueZero(old, o.expected);
                assert.equal(loc.compareAndSet(o.expected, o.v), hit);
                if (hit) model[o.i] = o.v;
                break;
              }
              case "fetchAndAdd":
              case "incr":
              case "decr": {
                const delta = o.op === "fetchAndAdd" ? o.v : o.op === "incr" ? 1 : -1;
                const next = addModel(kind, old, delta);
                if (next instanceof RangeError) {
                  assert.throws(() => loc.fetchAndAdd(delta), RangeError);
                } else {
                  if (o.op === "fetchAndAdd") assert.ok(Object.is(loc.fetchAndAdd(delta), old));
                  else if (o.op === "incr") loc.incr();
                  else loc.decr();
                  model[o.i] = next;
                }
                break;
              }
              case "update":
                assert.ok(Object.is(loc.update(() => o.v), old));
                model[o.i] = o.v;
                break;
              case "modify":
                loc.modify(() => o.v);
                model[o.i] = o.v;
                break;
              case "getAs":
                assert.deepEqual(loc.getAs((x) => [x]), [old]);
                break;
            }
            assert.ok(
              Object.is(loc.get(), model[o.i]),
              `${o.op} left ${loc.get()}, model ${model[o.i]}`,
            );
          }
          for (let i = 0; i < 3; i++) assert.ok(Object.is(locs[i].get(), model[i]));
        }),
        { numRuns: 150 * STRESS },
      );
    });
  }
}

Deno.test("Loc: f64 values are exact, NaN and -0 included", () => {
  const heap = SharedHeap.create();
  for (
    const v of [
      0.1 + 0.2,
      -0,
      NaN,
      Infinity,
      -Infinity,
      Number.MIN_VALUE,
      Number.MAX_VALUE,
      2 ** 53 + 2,
    ]
  ) {
    const loc = Loc.make(heap, v);
    assert.ok(Object.is(loc.get(), v), `${v}`);
    loc.set(v);
    assert.ok(Object.is(loc.get(), v), `${v} after set`);
  }
  const nan = Loc.make(heap, NaN);
  assert.ok(nan.compareAndSet(NaN, 1), "NaN matches NaN");
  const zero = Loc.make(heap, -0);
  assert.ok(zero.compareAndSet(0, 5), "0 matches -0");
  assert.equal(zero.get(), 5);
});

Deno.test("Loc: i32 arithmetic wraps like Int32", () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, -0x80000000, { kind: "i32" });
  loc.decr();
  assert.equal(loc.get(), 0x7fffffff);
  loc.incr();
  assert.equal(loc.get(), -0x80000000);
  assert.equal(Loc.make(heap, -0, { kind: "i32" }).get(), 0);
});

Deno.test("Loc: a ref location points at another Loc", () => {
  const heap = SharedHeap.create();
  const target = Loc.make(heap, 42);
  const ref = Loc.make(heap, 0, { kind: "ref" });
  assert.equal(ref.get(), 0);
  ref.set(target.address);
  const found = Loc.fromAddress(heap, ref.get());
  assert.equal(found.get(), 42);
  found.set(43);
  assert.equal(target.get(), 43);
  assert.equal(found.kind, "f64");
  assert.equal(ref.kind, "ref");
});

Deno.test("Loc: handles survive structured cloning and are checked", () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, 7, { kind: "i32" });
  const again = Loc.attach(structuredClone(loc.handle));
  assert.equal(again.get(), 7);
  assert.equal(again.kind, "i32");
  again.set(8);
  assert.equal(loc.get(), 8);
  assert.equal(again.heap, heap);

  assert.throws(() => Loc.attach({ ...loc.handle, kind: "sabre.Mutex" } as never), HandleError);
  assert.throws(() => Loc.attach({ ...loc.handle, version: 99 }), HandleError);
  assert.throws(() => Loc.attach({ ...loc.handle, offset: loc.address + 16 }), /holds no Loc/);
  assert.throws(() => Loc.attach({ ...loc.handle, offset: 3 }), HandleError);
  assert.throws(() => Loc.attach({ ...loc.handle, offset: -16 }), HandleError);
  assert.throws(() => Loc.attach(null as never), HandleError);
  assert.throws(() => Loc.attach({ kind: "sabre.stm.Loc" } as never), /truncated/);
  assert.throws(
    () => Loc.attach({ ...loc.handle, sab: new SharedArrayBuffer(1 << 16) }),
    HandleError,
  );
  assert.throws(() => Loc.fromAddress(heap, 12345), /offset/);
  assert.throws(() => Loc.fromAddress({} as never, loc.address), TypeError);
});

Deno.test("Loc: bad values throw typed errors naming the value, before writing", () => {
  const heap = SharedHeap.create();
  assert.throws(() => Loc.make({} as never, 1), /'heap' is not a SharedHeap/);
  assert.throws(
    () => Loc.make(heap, "1" as never),
    (e) => e instanceof TypeError && /"1"/.test(e.message),
  );
  assert.throws(() => Loc.make(heap, 1, { kind: "u8" as never }), /'kind'.*"u8"/);
  assert.throws(
    () => Loc.make(heap, 1.5, { kind: "i32" }),
    (e) => e instanceof RangeError && /1\.5/.test(e.message),
  );
  assert.throws(() => Loc.make(heap, NaN, { kind: "i32" }), /NaN/);
  assert.throws(() => Loc.make(heap, 2 ** 31, { kind: "i32" }), RangeError);
  assert.throws(() => Loc.make(heap, -1, { kind: "ref" }), /-1/);
  assert.throws(() => Loc.makeArray(heap, -1), RangeError);
  const loc = Loc.make(heap, 1, { kind: "i32" });
  assert.throws(() => loc.set(NaN), /NaN/);
  assert.throws(() => loc.set(1n as never), /1n/);
  assert.throws(() => loc.exchange(undefined as never), TypeError);
  assert.throws(() => loc.compareAndSet("1" as never, 2), TypeError);
  assert.throws(() => loc.compareAndSet(1, 0.5), RangeError);
  assert.throws(() => loc.fetchAndAdd(0.5), /0\.5/);
  assert.throws(() => loc.fetchAndAdd("1" as never), TypeError);
  assert.throws(() => loc.update(() => 0.5), RangeError);
  assert.throws(() => loc.update(() => "x" as never), TypeError);
  assert.equal(loc.get(), 1, "nothing was written");
  assert.throws(() =>
    loc.update(() => {
      throw new SyntaxError("from fn");
    }), SyntaxError);
  assert.equal(heap.isPinned, false, "no pin left behind by a throwing fn");
});

Deno.test("Loc: getAs and update block with Retry until the value changes, or time out", async () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, 0);
  assert.throws(
    () => loc.getAs((x) => Retry.unless(x > 0), { timeoutMs: 20 }),
    TimeoutError,
  );
  assert.throws(
    () =>
      loc.update((x) => {
        Retry.unless(x > 0);
        return x - 1;
      }, { timeoutMs: 20 }),
    TimeoutError,
  );
  assert.equal(heap.isPinned, false);
  // Woken by a commit: async form, so this thread can commit meanwhile.
  const waiting = Xt.commitAsync((xt) => {
    const x = xt.get(loc);
    Retry.unless(x >= 2);
    return x;
  });
  await new Promise((r) => setTimeout(r, 10));
  loc.incr();
  await new Promise((r) => setTimeout(r, 10));
  loc.incr();
  assert.equal(await waiting, 2);
});

Deno.test("Loc: replaced cells and descriptors are reclaimed", () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, 0);
  const other = Loc.make(heap, 0);
  const before = heap.stats().liveBlocks;
  for (let i = 0; i < 5000; i++) {
    loc.incr();
    Xt.commit((xt) => {
      xt.incr(loc);
      xt.decr(other);
    });
  }
  for (let i = 0; i < 4; i++) heap.collect();
  const after = heap.stats();
  assert.equal(loc.get(), 10000);
  assert.equal(other.get(), -5000);
  assert.equal(after.liveBlocks, before, `live blocks ${after.liveBlocks}, was ${before}`);
  assert.equal(after.retiredBlocks, 0);
});

Deno.test("Loc: the worker's cell and descriptor pools go back to the heap on collect and close", () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, 0);
  const other = Loc.make(heap, 0);
  for (let i = 0; i < 3; i++) heap.collect();
  const before = heap.stats().liveBlocks;
  for (let i = 0; i < 3000; i++) {
    loc.incr();
    Xt.commit((xt) => {
      xt.incr(loc);
      xt.decr(other);
      xt.incr(Loc.fromAddress(heap, loc.address)); // the same log entry
    });
  }
  // Pooled blocks count as live until the heap reclaims.
  assert.ok(heap.stats().liveBlocks > before);
  const handle = loc.handle;
  heap.close();
  // A new instance of this realm (the old one left): the pools were emptied
  // into the heap, whose leftovers another worker collects.
  const again = Loc.attach(handle);
  for (let i = 0; i < 4; i++) again.heap.collect();
  const after = again.heap.stats();
  assert.equal(again.get(), 9000);
  // What stays: the domain header, its shared reserve for a full heap (8
  // cells, 4 descriptors), and each Loc's block and cell. `before` also
  // counted the cells and descriptors that the closed worker kept for a full
  // heap, which close() freed too, as the shared reserve was full.
  assert.equal(after.liveBlocks, 5 + 12, `live blocks ${after.liveBlocks}, was ${before}`);
  assert.ok(before > 5 + 12);
  assert.equal(after.retiredBlocks, 0);
});

Deno.test("inspect: console.log of a Loc shows its kind, address and value, not its domain", () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, 2.5);
  assert.equal(Deno.inspect(loc), `Loc { kind: "f64", address: ${loc.address}, value: 2.5 }`);
  const ref = Loc.make(heap, 0, { kind: "ref" });
  assert.match(Deno.inspect(ref), /^Loc \{ kind: "ref", address: \d+, value: 0 \}$/);
});

Deno.test("bad input: a misspelt Loc option throws TypeError naming it", () => {
  const heap = SharedHeap.create();
  assert.throws(
    () => Loc.make(heap, 0, { knd: "i32" } as never),
    (e) => e instanceof TypeError && /no field 'knd'.*'kind'/.test(e.message),
  );
});

Deno.test("roots: names beginning with sabre. are sabre's own: not listed, not replaced, not deleted", () => {
  const heap = SharedHeap.create();
  const first = Loc.make(heap, 1); // the STM keeps its domain under "sabre.stm"
  assert.ok(heap.root("sabre.stm") !== undefined);
  assert.deepEqual(heap.rootNames(), []);
  const reserved = (e: unknown) =>
    e instanceof TypeError && /"sabre\.stm" as names beginning with "sabre\."/.test(e.message);
  assert.throws(() => heap.deleteRoot("sabre.stm"), reserved);
  assert.throws(() => heap.setRoot("sabre.stm", heap.root("sabre.stm")!), reserved);
  // Clearing every listed root leaves the STM whole: a new Loc joins the
  // same domain, and one transaction spans both (deleting the root once
  // split the domain, and such a transaction threw).
  for (const name of heap.rootNames()) heap.deleteRoot(name);
  const second = Loc.make(heap, 2);
  assert.equal(Xt.commit((xt) => xt.get(first) + xt.get(second)), 3);
});

Deno.test("free: a second free through the same Loc object throws DestroyedError and frees nothing twice", () => {
  const heap = SharedHeap.create();
  const loc = Loc.make(heap, 5);
  loc.free();
  assert.throws(() => loc.free(), DestroyedError);
  for (let i = 0; i < 4; i++) heap.collect();
  // Once a double free put the block on its free list twice, two new Locs
  // shared it.
  const locs = Array.from({ length: 8 }, (_, i) => Loc.make(heap, i));
  assert.equal(new Set(locs.map((l) => l.address)).size, 8);
  locs.forEach((l, i) => assert.equal(l.get(), i));
});
