/**
 * Single-thread tests of Op: random k-CAS-n-CMP lists against a model, in
 * both modes, the stack-move example of the tour, and bad input.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Loc, Op, type OpEntry } from "./mod.ts";
import { SharedHeap } from "../memory/mod.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");
const LOCS = 6;

for (const mode of ["obstruction-free", "lock-free"] as const) {
  Deno.test(`model: random Op.atomically lists match a model (${mode})`, () => {
    const heap = SharedHeap.create();
    const entryArb = fc.record({
      cmp: fc.boolean(),
      expected: fc.integer({ min: 0, max: 2 }),
      desired: fc.integer({ min: 0, max: 2 }),
    });
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.shuffledSubarray([...Array(LOCS).keys()], { minLength: 0 }),
            fc.array(entryArb, { minLength: LOCS, maxLength: LOCS }),
          ),
          { minLength: 1, maxLength: 30 },
        ),
        (steps) => {
          const locs = Loc.makeArray(heap, LOCS, 0, { kind: "i32" });
          const model = new Array(LOCS).fill(0);
          for (const [which, specs] of steps) {
            const ops: OpEntry[] = which.map((i) =>
              specs[i].cmp
                ? Op.cmp(locs[i], specs[i].expected)
                : Op.cas(locs[i], specs[i].expected, specs[i].desired)
            );
            const ok = which.every((i) => model[i] === specs[i].expected);
            assert.equal(Op.atomically(ops, { mode }), ok);
            if (ok) { for (const i of which) if (!specs[i].cmp) model[i] = specs[i].desired; }
            assert.deepEqual(locs.map((l) => l.get()), model);
          }
        },
      ),
      { numRuns: 150 * STRESS },
    );
    assert.equal(heap.isPinned, false);
  });
}

Deno.test("Op: moving the top of one stack to another (stacks as ref chains)", () => {
  const heap = SharedHeap.create();
  // A node: a value Loc whose address names it, and a next ref Loc (found
  // here through a table; a real structure would store its address too).
  const nexts = new Map<number, Loc>();
  const node = (value: number, next: number) => {
    const v = Loc.make(heap, value);
    nexts.set(v.address, Loc.make(heap, next, { kind: "ref" }));
    return v.address;
  };
  const nextOf = (address: number) => nexts.get(address)!;
  const stackA = Loc.make(heap, node(19, 0), { kind: "ref" });
  const stackB = Loc.make(heap, node(76, 0), { kind: "ref" });
  const move = (source: Loc, target: Loc): boolean => {
    for (;;) {
      const top = source.get();
      if (top === 0) return false;
      const rest = nextOf(top).get();
      const oldTarget = target.get();
      const next = nextOf(top);
      if (
        Op.atomically([
          Op.cas(source, top, rest),
          Op.cas(target, oldTarget, top),
          Op.cas(next, rest, oldTarget),
        ])
      ) return true;
    }
  };
  assert.ok(move(stackA, stackB));
  assert.equal(stackA.get(), 0);
  const values: number[] = [];
  for (let p = stackB.get(); p !== 0; p = nextOf(p).get()) {
    values.push(Loc.fromAddress(heap, p).get());
  }
  assert.deepEqual(values, [19, 76]);
  assert.ok(!move(stackA, stackB));
});

Deno.test("Op: bad input throws typed errors naming the value", () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 0, { kind: "i32" });
  const foreign = Loc.make(SharedHeap.create(), 0);
  assert.throws(() => Op.cas({} as never, 0, 1), /'loc' is not a Loc/);
  assert.throws(() => Op.cas(a, "0" as never, 1), /'expected'.*"0"/);
  assert.throws(() => Op.cas(a, 0, 0.5), /0\.5/);
  assert.throws(() => Op.cmp(a, undefined as never), TypeError);
  assert.throws(() => Op.atomically("x" as never), TypeError);
  assert.throws(
    () => Op.atomically([{ loc: a, expected: 0, desired: 1, isCmp: false } as never]),
    /entry 0/,
  );
  assert.throws(() => Op.atomically([Op.cas(a, 0, 1), Op.cmp(a, 0)]), /same Loc/);
  assert.throws(() => Op.atomically([Op.cas(a, 0, 1), Op.cmp(foreign, 0)]), /another heap/);
  assert.throws(() => Op.atomically([Op.cas(a, 0, 1)], { mode: "x" as never }), /'mode'/);
  assert.equal(a.get(), 0);
  assert.ok(Op.atomically([]));
  assert.equal(heap.isPinned, false);
});
