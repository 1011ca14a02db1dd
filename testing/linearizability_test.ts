import assert from "node:assert/strict";
import fc from "fast-check";
import type { OpRecord } from "./history.ts";
import {
  anyResult,
  assertLinearizable,
  canonicalKey,
  checkLinearizable,
  counterModel,
  defineModel,
  firstArgKey,
  LinearizabilityError,
  mapModel,
  MapState,
  type Model,
  partitionByKey,
  queueModel,
  registerModel,
  stackModel,
} from "./linearizability.ts";

// ---------------------------------------------------------------------------
// Helpers

/** `[worker, op, args, invoke, response | null, result]`, seq numbered per worker. */
type Row = [number, string, unknown[], number, number | null, unknown?];

function history(...rows: Row[]): OpRecord[] {
  const seqs = new Map<number, number>();
  return rows.map(([worker, op, args, invoke, response, result]) => {
    const seq = seqs.get(worker) ?? 0;
    seqs.set(worker, seq + 1);
    return { worker, seq, op, args, invoke, response, result, clock: 0 };
  });
}

function assertOk<S>(records: readonly OpRecord[], model: Model<S>, partition?: boolean) {
  const result = checkLinearizable(records, model, partition ? { partition: firstArgKey } : {});
  assert.equal(result.ok, true, result.ok === true ? "" : result.reason);
  return result;
}

function assertNot<S>(records: readonly OpRecord[], model: Model<S>, partition?: boolean) {
  const result = checkLinearizable(records, model, partition ? { partition: firstArgKey } : {});
  assert.equal(result.ok, false, `expected a failure, got ok: ${result.ok}`);
  if (result.ok !== false) throw new Error("unreachable");
  return result;
}

// The tests treat every model's state as opaque.
const register = (initial: unknown = 0): Model<unknown> => registerModel(initial);
const map = (): Model<unknown> => mapModel() as Model<unknown>;
const counter = (initial: number | bigint = 0): Model<unknown> =>
  counterModel(initial) as Model<unknown>;
const queue = (): Model<unknown> => queueModel();
const stack = (): Model<unknown> => stackModel();

// ---------------------------------------------------------------------------
// Register

Deno.test("register: sequential history replays", () => {
  assertOk(
    history(
      [0, "read", [], 1, 2, 0],
      [0, "write", [1], 3, 4],
      [0, "read", [], 5, 6, 1],
      [0, "cas", [1, 2], 7, 8, true],
      [0, "cas", [1, 3], 9, 10, false],
      [0, "exchange", [4], 11, 12, 2],
      [0, "read", [], 13, 14, 4],
    ),
    register(),
  );
});

Deno.test("register: a read after a completed write may not return the old value", () => {
  const result = assertNot(
    history([0, "write", [1], 1, 2], [1, "read", [], 3, 4, 0]),
    register(),
  );
  assert.deepEqual(result.longestPrefix.map((r) => r.op), ["write"]);
  assert.equal(result.stateAfterPrefix, 1);
  assert.equal(result.deadline.op, "read");
  assert.deepEqual(result.candidates.map((c) => [c.record.op, c.expected]), [["read", 1]]);
  assert.match(result.reason, /Longest linearizable prefix found \(1 operations\)/);
  assert.match(result.reason, /1\. w0#0 write\(1\) -> undefined \[1\.\.2\]/);
  assert.match(result.reason, /w1#0 read\(\) -> 0 \[3\.\.4\]: model expects 1/);
  assert.match(result.reason, /register model/);
});

Deno.test("register: a read overlapping a write may return either value", () => {
  assertOk(history([0, "write", [1], 1, 4], [1, "read", [], 2, 3, 0]), register());
  assertOk(history([0, "write", [1], 1, 4], [1, "read", [], 2, 3, 1]), register());
  // Touching intervals (response time equal to invoke time) count as overlapping.
  assertOk(history([0, "write", [1], 1, 3], [1, "read", [], 3, 4, 0]), register());
  assertNot(history([0, "write", [1], 1, 2], [1, "read", [], 3, 4, 2]), register());
});

Deno.test("register: new-old inversion between two reads is not linearizable", () => {
  // Both reads overlap the write, but once a read saw 1, a later read may not see 0.
  assertNot(
    history([0, "write", [1], 1, 10], [1, "read", [], 2, 3, 1], [2, "read", [], 4, 5, 0]),
    register(),
  );
  assertOk(
    history([0, "write", [1], 1, 10], [1, "read", [], 2, 3, 0], [2, "read", [], 4, 5, 1]),
    register(),
  );
});

Deno.test("register: concurrent writes fit in one order only", () => {
  // write(1) and write(2) overlap; the reads after both pin the order to 1 then 2.
  const base: Row[] = [[0, "write", [1], 1, 5], [1, "write", [2], 2, 6]];
  assertOk(history(...base, [2, "read", [], 7, 8, 2], [2, "read", [], 9, 10, 2]), register());
  assertOk(history(...base, [2, "read", [], 7, 8, 1], [2, "read", [], 9, 10, 1]), register());
  assertNot(history(...base, [2, "read", [], 7, 8, 1], [2, "read", [], 9, 10, 2]), register());
  // A read overlapping both writes can see 1 and force 2 first.
  const result = assertOk(
    history(...base, [2, "read", [], 3, 4, 2], [3, "read", [], 7, 8, 1]),
    register(),
  );
  assert.deepEqual(result.linearizations[0].map((r) => r.op + r.args.join()), [
    "write2",
    "read",
    "write1",
    "read",
  ]);
});

Deno.test("register: two successful CAS from the same value cannot both win", () => {
  assertNot(
    history([0, "cas", [0, 1], 1, 4, true], [1, "cas", [0, 2], 2, 3, true]),
    register(),
  );
  assertOk(
    history([0, "cas", [0, 1], 1, 4, true], [1, "cas", [0, 2], 2, 3, false], [
      0,
      "read",
      [],
      5,
      6,
      1,
    ]),
    register(),
  );
});

// ---------------------------------------------------------------------------
// Pending operations

Deno.test("pending: a pending write may take effect, or not", () => {
  assertOk(history([0, "write", [1], 1, null], [1, "read", [], 2, 3, 1]), register());
  assertOk(history([0, "write", [1], 1, null], [1, "read", [], 2, 3, 0]), register());
  // Once seen, its effect stays.
  assertNot(
    history([0, "write", [1], 1, null], [1, "read", [], 2, 3, 1], [1, "read", [], 4, 5, 0]),
    register(),
  );
  // It cannot take effect before it was invoked.
  assertNot(history([1, "read", [], 2, 3, 1], [0, "write", [1], 4, null]), register());
  // A history of pending operations only is trivially linearizable.
  const result = assertOk(history([0, "write", [1], 1, null], [1, "pop", [], 2, null]), stack());
  assert.deepEqual(result.linearizations, [[]]);
});

Deno.test("pending: the witness contains the pending operations that took effect", () => {
  const records = history(
    [0, "enqueue", [7], 1, null],
    [1, "enqueue", [8], 2, null],
    [2, "dequeue", [], 3, 4, 8],
  );
  const result = assertOk(records, queue());
  // enqueue(8) must be in it, first; enqueue(7) may follow it (the search adds
  // pending operations greedily), or be left out.
  const order = result.linearizations[0].map((r) => r.op + r.args.join());
  assert.equal(order[0], "enqueue8");
  assert.equal(order.at(-1), "dequeue");
  assert.ok(order.length === 2 || order[1] === "enqueue7", order.join(" "));
  // Without enqueue(8) the dequeue has no explanation.
  assertNot(history([0, "enqueue", [7], 1, null], [2, "dequeue", [], 3, 4, 8]), queue());
});

// ---------------------------------------------------------------------------
// Counter

Deno.test("counter: lost update is detected", () => {
  const result = assertNot(
    history([0, "fetchAndAdd", [1], 1, 4, 0], [1, "fetchAndAdd", [1], 2, 3, 0]),
    counter(),
  );
  assert.equal(result.longestPrefix.length, 1);
  assert.match(result.reason, /model expects 1/);
  assertOk(
    history(
      [0, "fetchAndAdd", [1], 1, 4, 1],
      [1, "fetchAndAdd", [1], 2, 3, 0],
      [1, "get", [], 5, 6, 2],
      [1, "addAndFetch", [3], 7, 8, 5],
      [1, "compareAndSet", [5, 0], 9, 10, true],
      [1, "compareAndSet", [5, 1], 11, 12, false],
    ),
    counter(),
  );
});

Deno.test("counter: bigint counters keep their type", () => {
  assertOk(history([0, "fetchAndAdd", [2n], 1, 2, 0n], [0, "get", [], 3, 4, 2n]), counter(0n));
  assertNot(history([0, "fetchAndAdd", [2n], 1, 2, 0n], [0, "get", [], 3, 4, 2]), counter(0n));
});

// ---------------------------------------------------------------------------
// Map

Deno.test("map: every standard operation replays sequentially", () => {
  assertOk(
    history(
      [0, "get", ["a"], 1, 2, undefined],
      [0, "set", ["a", 1], 3, 4, undefined],
      [0, "set", ["a", 2], 5, 6, 1],
      [0, "has", ["a"], 7, 8, true],
      [0, "insert", ["a", 3], 9, 10, false],
      [0, "insert", ["b", 3], 11, 12, true],
      [0, "update", ["c", 1], 13, 14, undefined],
      [0, "has", ["c"], 15, 16, false],
      [0, "update", ["b", 4], 17, 18, 3],
      [0, "getOrInsert", ["b", 9], 19, 20, 4],
      [0, "getOrInsert", ["c", 9], 21, 22, 9],
      [0, "compareAndSet", ["c", 9, 10], 23, 24, true],
      [0, "compareAndSet", ["c", 9, 11], 25, 26, false],
      [0, "compareAndSet", ["d", undefined, 1], 27, 28, true],
      [0, "add", ["e", 5], 29, 30, 5],
      [0, "add", ["e", 5], 31, 32, 10],
      [0, "delete", ["e"], 33, 34, true],
      [0, "delete", ["e"], 35, 36, false],
      [0, "remove", ["d"], 37, 38, 1],
      [0, "size", [], 39, 40, 3],
      [0, "clear", [], 41, 42],
      [0, "size", [], 43, 44, 0],
    ),
    map(),
  );
});

Deno.test("map: deleteIf removes only the value given", () => {
  assertOk(
    history(
      [0, "set", ["a", 1], 1, 2, undefined],
      [0, "deleteIf", ["a", 2], 3, 4, false],
      [0, "deleteIf", ["b", undefined], 5, 6, false],
      [0, "get", ["a"], 7, 8, 1],
      [0, "deleteIf", ["a", 1], 9, 10, true],
      [0, "deleteIf", ["a", 1], 11, 12, false],
      [0, "get", ["a"], 13, 14, undefined],
    ),
    map(),
  );
  assertNot(
    history([0, "set", ["a", 1], 1, 2, undefined], [0, "deleteIf", ["a", 2], 3, 4, true]),
    map(),
  );
  assertNot(
    history(
      [0, "set", ["a", 1], 1, 2, undefined],
      [0, "deleteIf", ["a", 1], 3, 4, true],
      [0, "get", ["a"], 5, 6, 1],
    ),
    map(),
  );
});

Deno.test("map: stale read on one key fails, partitioned or not", () => {
  const records = history(
    [0, "set", ["a", 1], 1, 2, undefined],
    [1, "set", ["b", 1], 1.5, 2.5, undefined],
    [1, "get", ["b"], 3, 4, 1],
    [2, "get", ["a"], 3, 4, undefined],
  );
  assertNot(records, map());
  const result = assertNot(records, map(), true);
  assert.equal(result.partitionKey, "a");
  assert.match(result.reason, /\(partition "a"\)/);
});

Deno.test("map: two concurrent getOrInsert cannot both insert", () => {
  assertNot(
    history([0, "getOrInsert", ["k", 1], 1, 4, 1], [1, "getOrInsert", ["k", 2], 2, 3, 2]),
    map(),
  );
  assertOk(
    history([0, "getOrInsert", ["k", 1], 1, 4, 2], [1, "getOrInsert", ["k", 2], 2, 3, 2]),
    map(),
  );
});

Deno.test("map: byte-array keys compare by content", () => {
  const k = (n: number) => new Uint8Array([n, 0]);
  const records = history(
    [0, "set", [k(1), "x"], 1, 2, undefined],
    [1, "get", [k(1)], 3, 4, "x"],
    [1, "get", [k(2)], 5, 6, undefined],
  );
  assertOk(records, map(), true);
  assert.equal(partitionByKey(records, firstArgKey).length, 2);
  assertNot(history([0, "set", [k(1), "x"], 1, 2], [1, "get", [k(1)], 3, 4, "y"]), map());
});

Deno.test("map: whole-map operations refuse partitioning", () => {
  const records = history([0, "set", ["a", 1], 1, 2, undefined], [0, "size", [], 3, 4, 1]);
  assertOk(records, map());
  assert.throws(() => checkLinearizable(records, map(), { partition: firstArgKey }), /size\(\)/);
});

Deno.test("map: initial entries and extra operations", () => {
  const model = mapModel({
    initial: [["a", 1]],
    ops: { set: (s, [k, v]) => ({ state: s.with(k, v), result: anyResult }) },
  });
  assertOk(history([0, "set", ["a", 5], 1, 2, "whatever"], [0, "get", ["a"], 3, 4, 5]), model);
  assertOk(history([0, "get", ["a"], 1, 2, 1]), model);
  assert.throws(
    () => checkLinearizable(history([0, "frob", [], 1, 2]), model),
    /operation 'frob' as the map model has no such operation: it knows get, has, set/,
  );
});

// ---------------------------------------------------------------------------
// Queue and stack

Deno.test("queue: reordering is detected, overlap allows either order", () => {
  const sequentialEnqueues: Row[] = [[0, "enqueue", [1], 1, 2], [1, "enqueue", [2], 3, 4]];
  assertOk(
    history(...sequentialEnqueues, [2, "dequeue", [], 5, 6, 1], [2, "dequeue", [], 7, 8, 2]),
    queue(),
  );
  const result = assertNot(
    history(...sequentialEnqueues, [2, "dequeue", [], 5, 6, 2], [2, "dequeue", [], 7, 8, 1]),
    queue(),
  );
  assert.match(result.reason, /w2#0 dequeue\(\) -> 2 \[5\.\.6\]: model expects 1/);
  const overlapping: Row[] = [[0, "enqueue", [1], 1, 4], [1, "enqueue", [2], 2, 3]];
  assertOk(
    history(...overlapping, [2, "dequeue", [], 5, 6, 2], [2, "dequeue", [], 7, 8, 1]),
    queue(),
  );
});

Deno.test("queue: empty dequeue while an item is surely present fails", () => {
  assertNot(
    history([0, "enqueue", [1], 1, 2], [1, "dequeue", [], 3, 4, undefined]),
    queue(),
  );
  assertOk(
    history(
      [0, "enqueue", [1], 1, 4],
      [1, "dequeue", [], 2, 3, undefined],
      [1, "peek", [], 5, 6, 1],
      [1, "size", [], 7, 8, 1],
    ),
    queue(),
  );
  const withNull = queueModel({ empty: null });
  assertOk(history([0, "dequeue", [], 1, 2, null]), withNull);
  assertNot(history([0, "dequeue", [], 1, 2, undefined]), withNull);
});

Deno.test("stack: LIFO order is enforced", () => {
  const pushes: Row[] = [[0, "push", [1], 1, 2], [0, "push", [2], 3, 4]];
  assertOk(
    history(...pushes, [1, "pop", [], 5, 6, 2], [1, "peek", [], 7, 8, 1], [
      1,
      "size",
      [],
      9,
      10,
      1,
    ]),
    stack(),
  );
  assertNot(history(...pushes, [1, "pop", [], 5, 6, 1]), stack());
  // Concurrent pushes: either may be on top.
  assertOk(
    history([0, "push", [1], 1, 4], [1, "push", [2], 2, 3], [2, "pop", [], 5, 6, 1]),
    stack(),
  );
  // A pop overlapping a push may take that item.
  assertOk(history([0, "push", [1], 1, 4], [1, "pop", [], 2, 3, 1]), stack());
});

// ---------------------------------------------------------------------------
// Checker plumbing

Deno.test("assertLinearizable throws the report", () => {
  const bad = history([0, "write", [1], 1, 2], [1, "read", [], 3, 4, 0]);
  assert.throws(() => assertLinearizable(bad, register()), LinearizabilityError);
  try {
    assertLinearizable(bad, register());
  } catch (e) {
    assert.ok(e instanceof LinearizabilityError);
    assert.equal(e.result.ok, false);
    assert.match(e.message, /Not linearizable/);
  }
  assert.equal(assertLinearizable(bad.slice(0, 1), register()).ok, true);
});

Deno.test("budget: maxSteps and timeoutMs give 'unknown' instead of hanging", () => {
  // 40 overlapping writes, then a read of a value nobody wrote: without a budget
  // the search would visit every subset of the writes.
  const rows: Row[] = Array.from({ length: 40 }, (_, i) => [i, "write", [i + 1], i, 100] as Row);
  rows.push([99, "read", [], 101, 102, -1]);
  const records = history(...rows);
  const bySteps = checkLinearizable(records, register(), { maxSteps: 1000 });
  assert.equal(bySteps.ok, "unknown");
  assert.equal(bySteps.steps, 1001);
  assert.match(bySteps.ok === "unknown" ? bySteps.reason : "", /maxSteps ran out/);
  const byTime = checkLinearizable(records, register(), { timeoutMs: 20 });
  assert.equal(byTime.ok, "unknown");
  assert.match(byTime.ok === "unknown" ? byTime.reason : "", /timeoutMs ran out/);
  assert.throws(
    () => assertLinearizable(records, register(), { maxSteps: 10 }),
    LinearizabilityError,
  );
});

Deno.test("checker rejects a response before its invocation and unknown operations", () => {
  assert.throws(() => checkLinearizable(history([0, "read", [], 5, 4, 0]), register()), RangeError);
  assert.throws(
    () => checkLinearizable(history([0, "toString", [], 1, 2]), register()),
    /'toString' as the register model has no such operation/,
  );
});

Deno.test("defineModel with a custom result equality", () => {
  // A set whose `toArray` may list members in any order.
  const set = defineModel<readonly number[]>({
    name: "set",
    init: () => [],
    ops: {
      add: (s, [v]) => ({
        state: s.includes(v as number) ? s : [...s, v as number].sort(),
        result: !s.includes(v as number),
      }),
      toArray: (s) => ({ state: s, result: s }),
    },
    equalResult: (expected, observed) =>
      Array.isArray(expected) && Array.isArray(observed)
        ? canonicalKey([...expected].sort()) === canonicalKey([...observed].sort())
        : canonicalKey(expected) === canonicalKey(observed),
    key: (s) => s.join(","),
  });
  assertOk(
    history([0, "add", [2], 1, 2, true], [0, "add", [1], 3, 4, true], [0, "toArray", [], 5, 6, [
      2,
      1,
    ]]),
    set,
  );
  assertNot(history([0, "add", [2], 1, 2, true], [0, "add", [2], 3, 4, true]), set);
});

Deno.test("canonicalKey distinguishes types and ignores key order", () => {
  const distinct = [
    undefined,
    null,
    true,
    false,
    0,
    1,
    "1",
    1n,
    NaN,
    [1],
    new Uint8Array([1]),
    new Int8Array([1]),
    { a: 1 },
    new Map([[1, 2]]),
    new Set([1]),
    new Date(1),
    new Error("x"),
    new TypeError("x"),
  ];
  const keys = distinct.map(canonicalKey);
  assert.equal(new Set(keys).size, keys.length, keys.join(" "));
  assert.equal(canonicalKey(-0), canonicalKey(0));
  assert.equal(canonicalKey(NaN), canonicalKey(NaN));
  assert.equal(canonicalKey({ a: 1, b: 2 }), canonicalKey({ b: 2, a: 1 }));
  assert.equal(canonicalKey(new Map([[1, 2], [3, 4]])), canonicalKey(new Map([[3, 4], [1, 2]])));
  assert.throws(() => canonicalKey(() => 0), TypeError);
  assert.equal(MapState.from([["a", 1]]).key(), MapState.from().with("a", 1).key());
  assert.match(Deno.inspect(MapState.from([["a", 1]])), /MapState Map\(1\) \{ "a" => 1 \}/);
});

// ---------------------------------------------------------------------------
// Properties

/** One operation of a generated schedule: which worker runs it, and what. */
interface Planned {
  readonly worker: number;
  readonly op: string;
  readonly args: readonly unknown[];
  /** Fractions in (0, 1) that place the interval's ends (see `simulate`). */
  readonly before: number;
  readonly after: number;
  /** Last operation of its worker only: leave it pending. */
  readonly pending: boolean;
}

/**
 * Runs `plan` sequentially through `model` (operation i takes effect at time
 * 1000(i + 1)) and records it as a concurrent history: each operation gets an
 * interval around its point, inside the gap its worker leaves between the
 * previous operation's point and the next one's, so a worker's operations
 * never overlap and real time agrees with the plan. The result is
 * linearizable by construction; the plan order is a witness.
 */
function simulate<S>(model: Model<S>, plan: readonly Planned[]): OpRecord[] {
  const results: unknown[] = [];
  let state = model.init();
  for (const p of plan) {
    const step = model.step(state, p.op, p.args);
    state = step.state;
    results.push(step.result === anyResult ? undefined : step.result);
  }
  const point = (i: number) => 1000 * (i + 1);
  const lastResponse = new Map<number, number>(); // worker → response of its previous op
  const seqs = new Map<number, number>();
  const records: OpRecord[] = [];
  const nextPoint = plan.map((p, i) => {
    const j = plan.findIndex((q, k) => k > i && q.worker === p.worker);
    return j === -1 ? point(plan.length) + 1000 : point(j);
  });
  plan.forEach((p, i) => {
    const from = lastResponse.get(p.worker) ?? 0;
    const invoke = from + p.before * (point(i) - from);
    // The response lands before the middle of the gap to the worker's next point.
    const response = point(i) + p.after * (nextPoint[i] - point(i)) / 2;
    const seq = seqs.get(p.worker) ?? 0;
    seqs.set(p.worker, seq + 1);
    const pending = p.pending && nextPoint[i] > point(plan.length);
    records.push({
      worker: p.worker,
      seq,
      op: p.op,
      args: p.args,
      invoke,
      response: pending ? null : response,
      result: pending ? undefined : results[i],
      clock: 0,
    });
    lastResponse.set(p.worker, response);
  });
  return records;
}

const fraction = fc.integer({ min: 1, max: 99 }).map((n) => n / 100);

function planArb(workers: number, opArb: fc.Arbitrary<Call>, max = 24) {
  return fc.array(
    fc.record({
      worker: fc.integer({ min: 0, max: workers - 1 }),
      call: opArb,
      before: fraction,
      after: fraction,
      pending: fc.boolean(),
    }).map(({ worker, call, before, after, pending }): Planned => ({
      worker,
      op: call.op,
      args: call.args,
      before,
      after,
      pending,
    })),
    { minLength: 1, maxLength: max, size: "max" },
  );
}

const value = fc.integer({ min: 0, max: 3 });
const key = fc.constantFrom("a", "b", "c");
/** An operation to plan: its name and arguments. */
interface Call {
  readonly op: string;
  readonly args: unknown[];
}
const call = (op: string, ...args: unknown[]): Call => ({ op, args });

const registerOp: fc.Arbitrary<Call> = fc.oneof(
  fc.constant(call("read")),
  value.map((v) => call("write", v)),
  fc.tuple(value, value).map(([e, v]) => call("cas", e, v)),
);
const mapOp: fc.Arbitrary<Call> = fc.oneof(
  key.map((k) => call("get", k)),
  fc.tuple(key, value).map(([k, v]) => call("set", k, v)),
  key.map((k) => call("delete", k)),
  fc.tuple(key, value).map(([k, v]) => call("getOrInsert", k, v)),
  fc.tuple(key, value, value).map(([k, e, v]) => call("compareAndSet", k, e, v)),
  fc.tuple(key, value).map(([k, d]) => call("add", k, d)),
);
const counterOp: fc.Arbitrary<Call> = fc.oneof(
  value.map((d) => call("fetchAndAdd", d + 1)),
  fc.constant(call("get")),
);
const queueOp: fc.Arbitrary<Call> = fc.oneof(
  value.map((v) => call("enqueue", v)),
  fc.constant(call("dequeue")),
);
const stackOp: fc.Arbitrary<Call> = fc.oneof(
  value.map((v) => call("push", v)),
  fc.constant(call("pop")),
);

/** Operations whose result reads state: replacing it with an unheard-of value must fail. */
const READS = new Set(["read", "get", "fetchAndAdd", "dequeue", "pop"]);

const cases: { name: string; model: () => Model<unknown>; op: fc.Arbitrary<Call> }[] = [
  { name: "register", model: register, op: registerOp },
  { name: "map", model: map, op: mapOp },
  { name: "counter", model: counter, op: counterOp },
  { name: "queue", model: queue, op: queueOp },
  { name: "stack", model: stack, op: stackOp },
];

for (const { name, model, op } of cases) {
  Deno.test(`property (${name}): histories of a sequential run with overlapping intervals are linearizable`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }).chain((w) => planArb(w, op)), (plan) => {
        const records = simulate(model(), plan);
        const result = checkLinearizable(records, model());
        assert.equal(result.ok, true, result.ok === true ? "" : result.reason);
        // The witness replays through the model with every completed result.
        let state = model().init();
        for (const r of result.linearizations[0]) {
          const step = model().step(state, r.op, r.args);
          if (r.response !== null && step.result !== anyResult) {
            assert.equal(canonicalKey(step.result), canonicalKey(r.result));
          }
          state = step.state;
        }
        const completed = records.filter((r) => r.response !== null);
        assert.ok(completed.every((r) => result.linearizations[0].includes(r)));
      }),
      { numRuns: 150 },
    );
  });

  Deno.test(`property (${name}): a read that returns a value no run can produce fails`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((w) => planArb(w, op)),
        fc.nat(),
        (plan, pick) => {
          const records = simulate(model(), plan);
          const reads = records.filter((r) => READS.has(r.op) && r.response !== null);
          fc.pre(reads.length > 0);
          const victim = reads[pick % reads.length];
          victim.result = -1; // values are 0..3 and counters only grow
          const result = checkLinearizable(records, model());
          assert.equal(result.ok, false);
          assert.ok(result.ok === false && !result.longestPrefix.includes(victim));
        },
      ),
      { numRuns: 100 },
    );
  });
}

Deno.test("property (map): per-key checks agree with the whole-history check", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3 }).chain((w) => planArb(w, mapOp, 14)),
      fc.array(fc.tuple(fc.nat(), value), { maxLength: 2 }),
      (plan, mutations) => {
        const records = simulate(map(), plan);
        // Random mutations of results: linearizable or not, both checks must agree.
        for (const [i, v] of mutations) {
          const r = records[i % records.length];
          if (r.response !== null) r.result = v;
        }
        const whole = checkLinearizable(records, map());
        const split = checkLinearizable(records, map(), { partition: firstArgKey });
        assert.equal(split.ok, whole.ok);
      },
    ),
    { numRuns: 200 },
  );
});

// Exhaustive reference: try every subset of pending operations and every order
// of them with the completed ones that respects real time.
function bruteForce<S>(records: readonly OpRecord[], model: Model<S>): boolean {
  const completed = records.filter((r) => r.response !== null);
  const pending = records.filter((r) => r.response === null);
  for (let mask = 0; mask < 1 << pending.length; mask++) {
    const chosen = [...completed, ...pending.filter((_, i) => mask & (1 << i))];
    if (someOrder(chosen, [], model.init(), model)) return true;
  }
  return false;
}

function someOrder<S>(left: OpRecord[], done: OpRecord[], state: S, model: Model<S>): boolean {
  if (left.length === 0) return true;
  for (const r of left) {
    // r may come next only if nothing left responded before r was invoked.
    if (left.some((q) => q !== r && q.response !== null && q.response < r.invoke)) continue;
    const step = model.step(state, r.op, r.args);
    if (
      r.response !== null && step.result !== anyResult &&
      canonicalKey(step.result) !== canonicalKey(r.result)
    ) continue;
    if (someOrder(left.filter((q) => q !== r), [...done, r], step.state, model)) return true;
  }
  return false;
}

function randomHistoryArb(
  opArb: fc.Arbitrary<Call>,
  results: fc.Arbitrary<unknown>,
) {
  return fc.array(
    fc.record({
      call: opArb,
      invoke: fc.integer({ min: 0, max: 12 }),
      length: fc.integer({ min: 0, max: 8 }),
      pending: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
      result: results,
    }),
    { minLength: 1, maxLength: 6 },
  ).map((ops) =>
    ops.map(({ call, invoke, length, pending, result }, i): OpRecord => ({
      worker: i,
      seq: 0,
      op: call.op,
      args: call.args,
      invoke,
      response: pending ? null : invoke + length,
      result: pending ? undefined : result,
      clock: 0,
    }))
  );
}

Deno.test("property: the checker agrees with exhaustive search on small random histories", () => {
  const kinds = [
    {
      model: register,
      arb: randomHistoryArb(
        registerOp,
        fc.oneof(value, fc.boolean(), fc.constant(undefined)),
      ),
    },
    {
      model: queue,
      arb: randomHistoryArb(queueOp, fc.oneof(value, fc.constant(undefined))),
    },
  ];
  for (const { model, arb } of kinds) {
    let linearizable = 0;
    fc.assert(
      fc.property(arb, (records) => {
        const expected = bruteForce(records, model());
        const result = checkLinearizable(records, model());
        assert.equal(result.ok, expected);
        if (expected) linearizable++;
      }),
      { numRuns: 400 },
    );
    // Both answers occur often enough for the comparison to mean something.
    assert.ok(linearizable > 20 && linearizable < 380, `linearizable in ${linearizable} of 400`);
  }
});

// ---------------------------------------------------------------------------
// Size

/** A small deterministic generator (mulberry32), so the test never varies. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("size: 200 map operations from 4 workers on 3 keys check per key", () => {
  const random = prng(42);
  const pickOf = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
  const frac = () => 0.01 + 0.98 * random();
  const plan: Planned[] = Array.from({ length: 200 }, () => {
    const k = pickOf(["a", "b", "c"]);
    const v = Math.floor(random() * 4);
    const [op, args] = pickOf<[string, unknown[]]>([
      ["get", [k]],
      ["set", [k, v]],
      ["delete", [k]],
      ["getOrInsert", [k, v]],
      ["compareAndSet", [k, v, (v + 1) % 4]],
      ["add", [k, 1]],
    ]);
    return {
      worker: Math.floor(random() * 4),
      op,
      args,
      before: frac(),
      after: frac(),
      pending: false,
    };
  });
  const records = simulate(map(), plan);
  const result = checkLinearizable(records, map(), { partition: firstArgKey, timeoutMs: 30_000 });
  assert.equal(result.ok, true, result.ok === true ? "" : result.reason);
  assert.equal(result.linearizations.length, 3);

  // The same history with one stale read must fail, also per key.
  const victim = records.findLast((r) => r.op === "get")!;
  victim.result = -1;
  const bad = checkLinearizable(records, map(), { partition: firstArgKey, timeoutMs: 30_000 });
  assert.equal(bad.ok, false);
  assert.equal(bad.ok === false && bad.partitionKey, victim.args[0]);
  if (bad.ok !== false) throw new Error("unreachable");
  assert.ok(!bad.longestPrefix.includes(victim));
  assert.ok(bad.candidates.some((c) => c.record === victim));
  // Long prefixes are cut to their end in the report.
  assert.ok(bad.longestPrefix.length > 20);
  assert.match(bad.reason, /… \d+ earlier operations \(see longestPrefix\)/);
  assert.match(bad.reason, new RegExp(`^  ${bad.longestPrefix.length}\\. `, "m"));
});
