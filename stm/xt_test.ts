/**
 * Single-thread tests of Xt: random transactions (every access, snapshots
 * and rollbacks, aborts) against a model, Xt.first, post-commit actions,
 * isInLog/validate, blocking and timeouts, commitAsync, log misuse and bad
 * input.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { isRetry, Loc, Retry, Xt, type XtSnapshot } from "./mod.ts";
import { faultInjection, HeapExhaustedError, SharedHeap, TimeoutError } from "../memory/mod.ts";
import { seededRandom } from "../testing/harness.ts";
import { orderByAddress } from "./_kcas.ts";

const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");
const LOCS = 12; // more than the log's linear-scan limit

type XtOp =
  | { op: "get" | "incr" | "decr"; i: number }
  | { op: "set" | "exchange" | "fetchAndAdd" | "update" | "modify"; i: number; v: number }
  | { op: "swap"; i: number; j: number }
  | { op: "compareAndSwap" | "compareAndSet"; i: number; expected: number; v: number }
  | { op: "snapshot" }
  | { op: "rollback" };

const xtOpArb: fc.Arbitrary<XtOp> = (() => {
  const i = fc.integer({ min: 0, max: LOCS - 1 });
  const v = fc.integer({ min: -4, max: 4 });
  return fc.oneof(
    fc.record({ op: fc.constantFrom("get" as const, "incr" as const, "decr" as const), i }),
    fc.record({
      op: fc.constantFrom(
        "set" as const,
        "exchange" as const,
        "fetchAndAdd" as const,
        "update" as const,
        "modify" as const,
      ),
      i,
      v,
    }),
    fc.record({ op: fc.constant("swap" as const), i, j: i }),
    fc.record({
      op: fc.constantFrom("compareAndSwap" as const, "compareAndSet" as const),
      i,
      expected: v,
      v,
    }),
    fc.record({ op: fc.constantFrom("snapshot" as const, "rollback" as const) }),
  );
})();

class Abort extends Error {}

/** Applies `o` to the model state `work`, pushing what the access returns. */
function modelStep(o: XtOp, work: number[], snaps: number[][], expect: unknown[]): void {
  switch (o.op) {
    case "get":
      expect.push(work[o.i]);
      break;
    case "incr":
    case "decr":
      work[o.i] += o.op === "incr" ? 1 : -1;
      break;
    case "set":
    case "modify":
      work[o.i] = o.v;
      break;
    case "exchange":
    case "fetchAndAdd":
    case "update":
      expect.push(work[o.i]);
      work[o.i] = o.op === "fetchAndAdd" ? work[o.i] + o.v : o.v;
      break;
    case "swap": {
      const t = work[o.i];
      work[o.i] = work[o.j];
      work[o.j] = t;
      break;
    }
    case "compareAndSwap":
    case "compareAndSet": {
      const old = work[o.i];
      expect.push(o.op === "compareAndSwap" ? old : old === o.expected);
      if (old === o.expected) work[o.i] = o.v;
      break;
    }
    case "snapshot":
      snaps.push(work.slice());
      break;
    case "rollback":
      if (snaps.length > 0) {
        const s = snaps.pop()!;
        for (let k = 0; k < LOCS; k++) work[k] = s[k];
      }
      break;
  }
}

/** Performs `o` in `xt`, pushing what the access returns. */
function xtStep(xt: Xt, o: XtOp, locs: Loc[], taken: XtSnapshot[], results: unknown[]): void {
  switch (o.op) {
    case "get":
      results.push(xt.get(locs[o.i]));
      break;
    case "incr":
      xt.incr(locs[o.i]);
      break;
    case "decr":
      xt.decr(locs[o.i]);
      break;
    case "set":
      xt.set(locs[o.i], o.v);
      break;
    case "modify":
      xt.modify(locs[o.i], () => o.v);
      break;
    case "exchange":
      results.push(xt.exchange(locs[o.i], o.v));
      break;
    case "fetchAndAdd":
      results.push(xt.fetchAndAdd(locs[o.i], o.v));
      break;
    case "update":
      results.push(xt.update(locs[o.i], () => o.v));
      break;
    case "swap":
      xt.swap(locs[o.i], locs[o.j]);
      break;
    case "compareAndSwap":
      results.push(xt.compareAndSwap(locs[o.i], o.expected, o.v));
      break;
    case "compareAndSet":
      results.push(xt.compareAndSet(locs[o.i], o.expected, o.v));
      break;
    case "snapshot":
      taken.push(xt.snapshot());
      break;
    case "rollback":
      if (taken.length > 0) xt.rollback(taken.pop()!);
      break;
  }
}

Deno.test("model: random transactions (all accesses, snapshots, rollbacks, aborts) match a model", () => {
  const heap = SharedHeap.create();
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ ops: fc.array(xtOpArb, { maxLength: 25 }), abort: fc.boolean() }),
        { minLength: 1, maxLength: 8 },
      ),
      (txs) => {
        const locs = Loc.makeArray(heap, LOCS, 0);
        const model = new Array(LOCS).fill(0);
        for (const { ops, abort } of txs) {
          const results: unknown[] = [];
          const work = model.slice();
          const snaps: number[][] = [];
          const expectResults: unknown[] = [];
          // The model: apply to `work`, keep snapshots as copies.
          for (const o of ops) modelStep(o, work, snaps, expectResults);
          try {
            Xt.commit((xt) => {
              results.length = 0;
              const taken: XtSnapshot[] = [];
              for (const o of ops) xtStep(xt, o, locs, taken, results);
              if (abort) throw new Abort();
            });
          } catch (e) {
            if (!(e instanceof Abort)) throw e;
          }
          assert.deepEqual(results, expectResults);
          if (!abort) { for (let k = 0; k < LOCS; k++) model[k] = work[k]; }
          assert.deepEqual(locs.map((l) => l.get()), model);
        }
      },
    ),
    { numRuns: 200 * STRESS },
  );
  assert.equal(heap.isPinned, false);
});

Deno.test("model: groups of accesses under toNonblocking that retry or return match a model", () => {
  const heap = SharedHeap.create();
  // Snapshots stay outside the groups: a group that rolled back past its own
  // start is not a case toNonblocking promises anything for.
  const flatOp = xtOpArb.filter((o) => o.op !== "snapshot" && o.op !== "rollback");
  const stepArb = fc.oneof(
    { weight: 3, arbitrary: xtOpArb.map((o) => ({ group: false as const, o })) },
    {
      weight: 1,
      arbitrary: fc.record({
        group: fc.constant(true as const),
        ops: fc.array(flatOp, { maxLength: 8 }),
        retry: fc.boolean(),
      }),
    },
  );
  fc.assert(
    fc.property(fc.array(stepArb, { maxLength: 20 }), (steps) => {
      const locs = Loc.makeArray(heap, LOCS, 0);
      let work = new Array(LOCS).fill(0);
      const snaps: number[][] = [];
      const expect: unknown[] = [];
      for (const step of steps) {
        if (!step.group) {
          modelStep(step.o, work, snaps, expect);
          continue;
        }
        // A group's accesses return their values even when it retries, and
        // take effect only when it does not.
        const inner = work.slice();
        for (const o of step.ops) modelStep(o, inner, [], expect);
        expect.push(step.retry ? undefined : "done");
        if (!step.retry) work = inner;
      }
      const results: unknown[] = [];
      Xt.commit((xt) => {
        results.length = 0;
        const taken: XtSnapshot[] = [];
        for (const step of steps) {
          if (!step.group) {
            xtStep(xt, step.o, locs, taken, results);
            continue;
          }
          results.push(xt.toNonblocking((xt) => {
            for (const o of step.ops) xtStep(xt, o, locs, [], results);
            if (step.retry) Retry.later();
            return "done";
          }));
        }
      });
      assert.deepEqual(results, expect);
      assert.deepEqual(locs.map((l) => l.get()), work);
    }),
    { numRuns: 200 * STRESS },
  );
  assert.equal(heap.isPinned, false);
});

Deno.test("Xt: a transaction sees its own writes; an exception commits nothing", () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 1);
  const b = Loc.make(heap, 2);
  assert.throws(
    () =>
      Xt.commit((xt) => {
        xt.set(a, 10);
        assert.equal(xt.get(a), 10);
        xt.swap(a, b);
        throw new RangeError("no");
      }),
    RangeError,
  );
  assert.deepEqual([a.get(), b.get()], [1, 2]);
  assert.equal(heap.isPinned, false);
});

Deno.test("Xt.first: takes the first alternative that does not retry, rolling back the others", () => {
  const heap = SharedHeap.create();
  const [a, b, c, d] = [10, 20, 30, 27].map((v) => Loc.make(heap, v));
  const transfer = (amount: number, source: Loc, target: Loc) => (xt: Xt) => {
    const snap = xt.snapshot();
    if (xt.fetchAndAdd(source, -amount) < amount) {
      xt.rollback(snap);
      Retry.later();
    }
    xt.fetchAndAdd(target, amount);
    return source;
  };
  const used = Xt.commit(
    Xt.first([transfer(15, a, d), transfer(15, b, d), transfer(15, c, d)]),
  );
  assert.equal(used, b);
  assert.deepEqual([a, b, c, d].map((l) => l.get()), [10, 5, 30, 42]);
  // All retry: blocks on everything any alternative read, here until the timeout.
  assert.throws(
    () => Xt.commit(Xt.first([transfer(50, a, d), transfer(50, b, d)]), { timeoutMs: 20 }),
    TimeoutError,
  );
  assert.throws(() => Xt.first([]), TypeError);
  assert.throws(() => Xt.first([1 as never]), TypeError);
});

Deno.test("Xt.first: when every alternative retries, a change to any location read wakes it", async () => {
  const heap = SharedHeap.create();
  const x = Loc.make(heap, 0);
  const y = Loc.make(heap, 0);
  const waiting = Xt.commitAsync(
    Xt.first([
      (xt) => {
        Retry.unless(xt.get(x) > 0);
        return "x";
      },
      (xt) => {
        Retry.unless(xt.get(y) > 0);
        return "y";
      },
    ]),
    { timeoutMs: 5000 },
  );
  await new Promise((r) => setTimeout(r, 20));
  x.set(1); // x was read only by the first, rolled-back alternative
  assert.equal(await waiting, "x");
});

Deno.test("Xt.toBlocking: a defined result returns, undefined waits until a location read changes", async () => {
  const heap = SharedHeap.create();
  const slot = Loc.make(heap, 0);
  const other = Loc.make(heap, 0);
  const tryTake = (xt: Xt) => {
    const value = xt.exchange(slot, 0);
    return value === 0 ? undefined : value;
  };
  slot.set(4);
  assert.equal(Xt.commit((xt) => xt.toBlocking(tryTake)), 4);
  assert.equal(slot.get(), 0);
  // Falsy results other than undefined are results.
  assert.equal(Xt.commit((xt) => xt.toBlocking(() => 0)), 0);
  assert.equal(Xt.commit((xt) => xt.toBlocking(() => null)), null);
  // Nothing to take: blocks, and nothing it logged is committed.
  assert.throws(
    () =>
      Xt.commit((xt) => {
        xt.incr(other);
        return xt.toBlocking(tryTake);
      }, { timeoutMs: 20 }),
    TimeoutError,
  );
  assert.equal(other.get(), 0);
  const waiting = Xt.commitAsync((xt) => xt.toBlocking(tryTake), { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 20));
  slot.set(9);
  assert.equal(await waiting, 9);
  assert.equal(slot.get(), 0);
});

Deno.test("Xt.toNonblocking: a retry becomes undefined and its accesses are rolled back", async () => {
  const heap = SharedHeap.create();
  const stock = Loc.make(heap, 2);
  const audit = Loc.make(heap, 0);
  const log: string[] = [];
  const take = (n: number) => (xt: Xt) => {
    xt.incr(audit); // logged before the check: must not survive a retry
    xt.postCommit(() => log.push(`took ${n}`));
    Retry.unless(xt.get(stock) >= n);
    xt.fetchAndAdd(stock, -n);
    return n;
  };
  assert.equal(Xt.commit((xt) => xt.toNonblocking(take(5))), undefined);
  assert.deepEqual([stock.get(), audit.get(), log], [2, 0, []]);
  assert.equal(Xt.commit((xt) => xt.toNonblocking(take(1))), 1);
  assert.deepEqual([stock.get(), audit.get(), log], [1, 1, ["took 1"]]);
  // Accesses logged before the call are kept either way.
  assert.equal(
    Xt.commit((xt) => {
      xt.set(audit, 10);
      return xt.toNonblocking(take(5)) ?? xt.get(audit);
    }),
    10,
  );
  assert.equal(audit.get(), 10);
  // Round trip: toNonblocking of toBlocking.
  assert.equal(
    Xt.commit((xt) => xt.toNonblocking((xt) => xt.toBlocking(() => undefined))),
    undefined,
  );
  // Other signals and errors pass through.
  let attempts = 0;
  Xt.commit((xt) => {
    if (++attempts === 1) xt.toNonblocking(() => Retry.invalid());
  });
  assert.equal(attempts, 2);
  assert.throws(
    () =>
      Xt.commit((xt) =>
        xt.toNonblocking(() => {
          throw new RangeError("boom");
        })
      ),
    RangeError,
  );
  // A location read only inside the rolled-back call still wakes the transaction.
  const waiting = Xt.commitAsync((xt) => {
    const got = xt.toNonblocking(take(2));
    if (got === undefined) Retry.later();
    return got;
  }, { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 20));
  stock.set(3);
  assert.equal(await waiting, 2);
  assert.equal(stock.get(), 1);
});

Deno.test("Xt.toBlocking/toNonblocking: bad input and a log used after its attempt", () => {
  const heap = SharedHeap.create();
  let leaked: Xt | undefined;
  Xt.commit((xt) => {
    leaked = xt;
    assert.throws(() => xt.toBlocking(5 as never), /'tx' must be a function: current value is 5/);
    assert.throws(() => xt.toNonblocking("tx" as never), TypeError);
  });
  assert.throws(() => leaked!.toBlocking(() => 1), /attempt has ended/);
  assert.throws(() => leaked!.toNonblocking(() => 1), /attempt has ended/);
  heap.close();
});

Deno.test("Xt: post-commit actions run once, after a successful commit, in order", () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 0);
  const log: string[] = [];
  let runs = 0;
  Xt.commit((xt) => {
    runs++;
    xt.incr(a);
    xt.postCommit(() => log.push(`one ${a.get()}`));
    const snap = xt.snapshot();
    xt.postCommit(() => log.push("dropped"));
    xt.rollback(snap);
    xt.postCommit(() => log.push("two"));
    if (runs === 1) Retry.invalid(); // the first attempt is abandoned
  });
  assert.equal(runs, 2);
  assert.deepEqual(log, ["one 1", "two"]);
  assert.throws(() => Xt.commit((xt) => xt.postCommit(5 as never)), TypeError);
});

Deno.test("Xt: isInLog, validate, and a log used after its attempt", () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 0);
  const b = Loc.make(heap, 0);
  let leaked: Xt | undefined;
  let attempts = 0;
  Xt.commit((xt) => {
    attempts++;
    leaked = xt;
    assert.equal(xt.isInLog(a), false);
    xt.get(a);
    assert.equal(xt.isInLog(a), true);
    assert.equal(xt.isInLog(b), false);
    xt.validate(a);
    xt.validate(b); // not in the log: nothing to check
    if (attempts === 1) {
      a.set(5); // a change outside the transaction
      xt.validate(a); // abandons this attempt
      assert.fail("validate should have thrown");
    }
  });
  assert.equal(attempts, 2);
  assert.throws(() => leaked!.get(a), /attempt that has ended/);
  assert.throws(() => leaked!.snapshot(), TypeError);
  assert.equal(leaked!.isInLog(a), false);
});

Deno.test("Xt: opacity in one thread: a read after another commit never mixes states", () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 0);
  const b = Loc.make(heap, 0);
  let attempts = 0;
  const sum = Xt.commit((xt) => {
    attempts++;
    const va = xt.get(a);
    if (attempts === 1) {
      // Another commit changes both between our two reads.
      Xt.commit((inner) => {
        inner.incr(a);
        inner.decr(b);
      });
    }
    const vb = xt.get(b); // inconsistent with va on the first attempt: restarts
    return va + vb;
  });
  assert.equal(sum, 0);
  assert.equal(attempts, 2);
});

Deno.test("Xt: Retry.later with nothing read waits for the timeout", () => {
  assert.throws(() => Xt.commit(() => Retry.later(), { timeoutMs: 10 }), TimeoutError);
});

Deno.test("Xt: commitAsync is woken by a commit and times out", async () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 0);
  const b = Loc.make(heap, 0);
  await assert.rejects(
    Xt.commitAsync((xt) => Retry.unless(xt.get(a) > 0), { timeoutMs: 20 }),
    TimeoutError,
  );
  const waiting = Xt.commitAsync((xt) => {
    Retry.unless(xt.get(a) + xt.get(b) >= 2);
    return xt.exchange(a, 0);
  });
  await new Promise((r) => setTimeout(r, 10));
  a.incr();
  await new Promise((r) => setTimeout(r, 10));
  b.incr();
  assert.equal(await waiting, 1);
  assert.equal(a.get(), 0);
  await assert.rejects(
    Xt.commitAsync(() => {
      throw new URIError("x");
    }),
    URIError,
  );
});

Deno.test("Xt: bad input throws typed errors naming the value", () => {
  const heap = SharedHeap.create();
  const other = SharedHeap.create();
  const a = Loc.make(heap, 0, { kind: "i32" });
  const foreign = Loc.make(other, 0);
  assert.throws(() => Xt.commit(5 as never), /'tx' must be a function: current value is 5/);
  assert.throws(() => Xt.commit(() => 0, { mode: "fast" as never }), /'mode'.*"fast"/);
  assert.throws(() => Xt.commit(() => 0, { timeoutMs: -1 }), /'timeoutMs'.*-1/);
  assert.throws(() => Xt.commit((xt) => xt.get({} as never)), /'loc' is not a Loc/);
  assert.throws(() => Xt.commit((xt) => xt.set(a, 0.5)), /0\.5/);
  assert.throws(() => Xt.commit((xt) => xt.set(a, "x" as never)), TypeError);
  assert.throws(() => Xt.commit((xt) => xt.fetchAndAdd(a, 0.5)), RangeError);
  assert.throws(
    () => Xt.commit((xt) => xt.get(a) + xt.get(foreign)),
    (e) => e instanceof RangeError && /another heap/.test(e.message),
  );
  assert.throws(() => Xt.commit((xt) => xt.rollback({ entries: 0 })), /snapshot/);
  const notFn = (e: unknown) =>
    e instanceof TypeError && /'fn' must be a function: current value is 5/.test(e.message);
  assert.throws(() => Xt.commit((xt) => xt.update(a, 5 as never)), notFn);
  assert.throws(() => Xt.commit((xt) => xt.modify(a, 5 as never)), notFn);
  assert.throws(() => a.update(5 as never), notFn);
  assert.throws(() => a.modify(5 as never), notFn);
  assert.throws(() => a.getAs(5 as never), notFn);
  assert.throws(() => Xt.commit(() => 0, "x" as never), /'options' must be an object/);
  assert.equal(a.get(), 0);
  assert.equal(heap.isPinned, false);
  assert.equal(other.isPinned, false);
});

Deno.test("Retry: the signals are recognisable and caught by commit", () => {
  let caught: unknown;
  try {
    Retry.later();
  } catch (e) {
    caught = e;
  }
  assert.ok(isRetry(caught));
  assert.ok(!isRetry(new Error()));
  Retry.unless(true);
  // One that escapes a transaction says so, as an Error.
  for (const signal of [() => Retry.later(), () => Retry.unless(false), () => Retry.invalid()]) {
    assert.throws(
      signal,
      (e) => e instanceof Error && isRetry(e) && /outside a transaction/.test(e.message),
    );
  }
});

Deno.test("bad input: an async transaction function throws TypeError and commits nothing", async () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 1);
  const asyncTx = async (xt: Xt) => {
    xt.set(a, 5); // before its first await: in the log, never committed
    await Promise.resolve();
    xt.set(a, 6);
  };
  assert.throws(
    () => Xt.commit(asyncTx),
    (e) => e instanceof TypeError && /Promise/.test(e.message),
  );
  await assert.rejects(Xt.commitAsync(asyncTx), (e) => e instanceof TypeError);
  await new Promise((resolve) => setTimeout(resolve, 10)); // the functions' tails ran
  assert.equal(a.get(), 1);
  Xt.commit((xt) => xt.set(a, 2));
  assert.equal(a.get(), 2);
  assert.equal(heap.isPinned, false);
});

Deno.test("Xt: lock-free mode commits like the default", () => {
  const heap = SharedHeap.create();
  const a = Loc.make(heap, 1);
  const b = Loc.make(heap, 2);
  const c = Loc.make(heap, 0);
  Xt.commit((xt) => xt.set(c, xt.get(a) + xt.get(b)), { mode: "lock-free" });
  assert.equal(c.get(), 3);
  assert.deepEqual([a.get(), b.get()], [1, 2]);
});

Deno.test("interleaving: a reader of a written location helps decide, so a read-only entry changed after validation cannot slip by", () => {
  const heap = SharedHeap.create();
  const x = Loc.make(heap, 0);
  const y = Loc.make(heap, 0);
  let readerSaw: number | undefined;
  let fired = false;
  faultInjection.hook = (site) => {
    if (site !== "stm.validated" || fired) return;
    fired = true;
    // Between the owner's validation of y and its status CAS: another
    // commit changes y, then a reader reads x.
    y.set(1);
    readerSaw = x.get();
  };
  let attempts = 0;
  let ySeen: number;
  try {
    ySeen = Xt.commit((xt) => {
      attempts++;
      const vy = xt.get(y);
      xt.set(x, 10 + vy);
      return vy;
    });
  } finally {
    faultInjection.hook = undefined;
  }
  assert.ok(fired);
  // The reader ran after y's change completed. If it saw x's old value, the
  // transaction must be ordered after it, so it must have read y = 1.
  if (readerSaw === 0) assert.equal(ySeen, 1, `attempts ${attempts}`);
  else assert.equal(readerSaw, 10 + ySeen);
  assert.equal(x.get(), 10 + ySeen);
});

Deno.test("Xt: what a rolled-back alternative read is checked at commit (no write skew through Xt.first, toNonblocking or rollback)", () => {
  const heap = SharedHeap.create();
  // In each case the transaction T writes y after an alternative found x
  // was 0, and another commit U, which sets x only while y is 0, lands in
  // between (here from inside T's body, as another worker's would). T must
  // then run again: both orders of T and U leave one of x and y at 0.
  const cases: [string, (x: Loc, y: Loc, u: () => void) => (xt: Xt) => string][] = [
    ["Xt.first", (x, y, u) =>
      Xt.first<string>([
        (xt) => {
          Retry.unless(xt.get(x) === 1);
          return "first";
        },
        (xt) => {
          xt.set(y, 1);
          u();
          return "second";
        },
      ])],
    ["toNonblocking", (x, y, u) => (xt) => {
      const got = xt.toNonblocking((xt) => {
        Retry.unless(xt.get(x) === 1);
        return "first";
      });
      if (got !== undefined) return got;
      xt.set(y, 1);
      u();
      return "second";
    }],
    ["rollback", (x, y, u) => (xt) => {
      const snap = xt.snapshot();
      const seen = xt.get(x);
      xt.rollback(snap);
      if (seen === 1) return "first";
      xt.set(y, 1);
      u();
      return "second";
    }],
  ];
  for (const [name, build] of cases) {
    const x = Loc.make(heap, 0);
    const y = Loc.make(heap, 0);
    let interfered = false;
    const u = () => {
      if (interfered) return;
      interfered = true;
      Xt.commit((xt) => {
        if (xt.get(y) === 0) xt.set(x, 1);
      });
    };
    const result = Xt.commit(build(x, y, u));
    assert.ok(x.get() === 0 || y.get() === 0, `${name}: x and y both set (write skew)`);
    assert.equal(result, "first", name);
    assert.deepEqual([x.get(), y.get()], [1, 0], name);
  }
});

Deno.test("orderByAddress: short and long logs come out in ascending address order", () => {
  const random = seededRandom(7);
  for (const n of [0, 1, 2, 3, 31, 32, 33, 100, 5000]) {
    for (const shape of ["random", "descending", "ascending"]) {
      const addrs = Array.from({ length: n }, (_, i) => 16 * (shape === "descending" ? n - i : i));
      if (shape === "random") {
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [addrs[i], addrs[j]] = [addrs[j], addrs[i]];
        }
      }
      const order = new Array<number>(n + 3).fill(-1);
      orderByAddress(n, addrs, order);
      const seen = order.slice(0, n);
      assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
      for (let i = 1; i < n; i++) {
        assert.ok(addrs[seen[i - 1]] < addrs[seen[i]], `${shape} ${n}: out of order at ${i}`);
      }
      assert.deepEqual(order.slice(n), [-1, -1, -1], "wrote past n");
    }
  }
});

Deno.test("STM on a full heap: a commit, Loc.make or Loc.makeArray that runs out of memory gives back what it took", () => {
  const MiB = 1 << 20;
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: MiB });
  // 40 entries: more cells than the reserve holds, and a descriptor past
  // the pooled sizes (16 + 40 * 32 bytes), which no reserve covers.
  const n = 40;
  const locs = Loc.makeArray(heap, n, 1);
  const fillAll = (size: number, into: number[]) => {
    try {
      for (;;) into.push(heap.allocate(size));
    } catch (e) {
      if (!(e instanceof HeapExhaustedError)) throw e;
    }
  };
  const settled = () => {
    for (let i = 0; i < 4; i++) heap.collect();
    return heap.stats().liveBlocks;
  };
  // Room for the descriptor and three 16-byte cells of the commit's 40.
  const descriptor = heap.allocate(16 + n * 32);
  const big: number[] = [];
  const small: number[] = [];
  fillAll(16 + n * 32, big);
  fillAll(16, small);
  heap.free(descriptor);
  for (const block of small.splice(0, 3)) heap.free(block);
  const before = settled();
  assert.throws(
    () => Xt.commit((xt) => locs.forEach((loc) => xt.incr(loc))),
    HeapExhaustedError,
  );
  assert.deepEqual(locs.map((loc) => loc.get()), Array(n).fill(1));
  // (Fewer where reserved cells that the commit took and gave back went to
  // the pool, which the collection frees.)
  assert.ok(settled() <= before, "the commit kept blocks it took");
  // Room for a Loc's block but not its cell.
  fillAll(16, small);
  heap.free(small.pop()!);
  const beforeMake = settled();
  assert.throws(() => Loc.make(heap, 5), HeapExhaustedError);
  assert.equal(settled(), beforeMake, "Loc.make kept its block");
  // Room for a few Locs of the array's ten.
  for (const block of small.splice(0, 7)) heap.free(block);
  const beforeArray = settled();
  assert.throws(() => Loc.makeArray(heap, 10, 0), HeapExhaustedError);
  assert.equal(settled(), beforeArray, "makeArray kept the Locs it made");
  // With room again, the same commit goes through.
  for (const block of [...small, ...big]) heap.free(block);
  Xt.commit((xt) => locs.forEach((loc) => xt.incr(loc)));
  assert.deepEqual(locs.map((loc) => loc.get()), Array(n).fill(2));
});
