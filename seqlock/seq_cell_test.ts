import assert from "node:assert/strict";
import fc from "fast-check";
import { HandleError, type SharedHandle, SharedHeap, TimeoutError } from "../memory/mod.ts";
import { Mutex } from "../latch/mod.ts";
import { runWorkers } from "../testing/harness.ts";
import { HistoryClock, mergeHistories, type OpRecord } from "../testing/history.ts";
import { assertLinearizable, registerModel } from "../testing/linearizability.ts";
import { SeqCell, type SeqCellSchema, SeqLock } from "./mod.ts";
import {
  allocWords,
  type CellCountArgs,
  type CellRoundsArgs,
  type CellStressArgs,
  holdElsewhere,
  type StressResult,
} from "./_seqlock_test_workers.ts";

const fixtures = new URL("./_seqlock_test_workers.ts", import.meta.url);
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

/** The error `fn` throws; fails when it throws none. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected an error");
}

/** Makes the cell's sequence odd, as if a writer were mid-publish (white-box, tests only). */
function fakeWriteInProgress(cell: SeqCell, on: boolean): void {
  const { sab, offset } = cell.handle;
  Atomics.add(new Int32Array(sab, offset, 2), 1, on ? 1 : -1);
}

async function stressTest(type: "i32" | "f64", heap: SharedHeap | undefined): Promise<void> {
  const cell = SeqCell.create({ k: "i32", a: type, b: type, c: type }, { heap });
  const data = allocWords(heap, 1);
  const results = await runWorkers<CellStressArgs, StressResult>({
    module: fixtures,
    fn: "seqCellStress",
    workers: 4,
    heap,
    args: { cell: cell.handle, type, data, durationMs: 1_000 * STRESS },
    timeoutMs: 60_000 + 2_000 * STRESS,
  });
  const [writer, ...readers] = results;
  assert.ok(writer.writes > 0, "the writer never wrote");
  for (const [i, reader] of readers.entries()) {
    assert.equal(reader.bad, 0, `reader ${i} saw ${reader.bad} inconsistent snapshots`);
    assert.ok(reader.accepted > 0, `reader ${i} read nothing`);
  }
  const last = cell.read();
  assert.equal(last.k, writer.writes);
  assert.equal(cell.version, writer.writes);
}

Deno.test("SeqCell stress: snapshots keep a === b and c === -a while a writer publishes (i32, heap)", async () => {
  await stressTest("i32", SharedHeap.create());
});

Deno.test("SeqCell stress: f64 fields (two words each) never come out torn (standalone)", async () => {
  await stressTest("f64", undefined);
});

Deno.test("SeqCell: 8 workers on 2 cores mixing update and reads lose no update", async () => {
  const heap = SharedHeap.create();
  const cell = SeqCell.create({ n: "u32", m: "i32", x: "f64" }, { heap });
  const results = await runWorkers<CellCountArgs, { updates: number; bad: number; reads: number }>({
    module: fixtures,
    fn: "seqCellCount",
    workers: 8,
    heap,
    args: { cell: cell.handle, iterations: 10_000 * STRESS },
    timeoutMs: 120_000,
  });
  const updates = results.reduce((n, r) => n + r.updates, 0);
  assert.equal(results.reduce((n, r) => n + r.bad, 0), 0, "a reader saw an inconsistent record");
  assert.ok(results.reduce((n, r) => n + r.reads, 0) > 0);
  assert.deepEqual(cell.read(), { n: updates, m: -updates, x: updates / 4 });
  assert.equal(cell.version, updates);
});

Deno.test("SeqCell: histories of one field used as a register are linearizable", async () => {
  const heap = SharedHeap.create();
  const rounds = 80 * STRESS;
  const cells = Array.from({ length: rounds }, () => SeqCell.create({ v: "i32" }, { heap }).handle);
  const clock = HistoryClock.create();
  const perWorker = await runWorkers<CellRoundsArgs, OpRecord[][]>({
    module: fixtures,
    fn: "seqCellRegisterRounds",
    workers: 4,
    heap,
    args: { cells, opsPerRound: 8, clock: clock.handle },
    timeoutMs: 120_000,
  });
  for (let round = 0; round < rounds; round++) {
    const history = mergeHistories(perWorker.map((histories) => histories[round]));
    assert.ok(history.length > 20);
    assertLinearizable(history, registerModel(0), { timeoutMs: 10_000 });
  }
});

Deno.test("SeqCell: values of every type round-trip; attach reads the schema from memory", () => {
  const heap = SharedHeap.create();
  const schema = { i: "i32", u: "u32", f: "f64", "név ü": "i32" } as const;
  const cell = SeqCell.create(schema, { heap, initial: { u: 2 ** 32 - 1, f: -0 } });
  assert.deepEqual(cell.fields, ["i", "u", "f", "név ü"]);
  assert.equal(cell.version, 1);
  assert.equal(cell.get("u"), 2 ** 32 - 1);
  assert.ok(Object.is(cell.get("f"), -0));
  const same = SeqCell.attach<typeof schema>(structuredClone(cell.handle));
  assert.deepEqual(same.fields, cell.fields);
  fc.assert(
    fc.property(
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      fc.double(),
      (i, u, f) => {
        cell.write({ i, u, f, "név ü": -i | 0 });
        const read = same.read();
        return read.i === i && read.u === u && Object.is(read.f, f) &&
          Object.is(same.get("f"), f) && read["név ü"] === (-i | 0);
      },
    ),
  );
  // Partial writes keep the other fields; readInto fills a given object.
  cell.write({ i: 5, u: 6, f: 7.5 });
  same.write({ u: 9 });
  const target = { i: 0, u: 0, f: 0, "név ü": 0, extra: "kept" };
  assert.equal(cell.readInto(target), target);
  assert.deepEqual(target, { i: 5, u: 9, f: 7.5, "név ü": target["név ü"], extra: "kept" });
  assert.equal(cell.tryRead()?.u, 9);
});

Deno.test("SeqCell: a bad schema is refused with the field named", () => {
  const refuse = (schema: unknown, error: typeof TypeError, pattern: RegExp) =>
    assert.throws(
      () => SeqCell.create(schema as SeqCellSchema),
      (e) => e instanceof error && pattern.test(e.message),
    );
  refuse({}, RangeError, /1 to 256 fields: current value is 0/);
  refuse(null, TypeError, /'schema'/);
  refuse(["i32"], TypeError, /'schema'/);
  refuse("i32", TypeError, /'schema'/);
  refuse({ good: "i32", bad: "i64" }, TypeError, /field 'bad'.*"i64"/);
  refuse({ n: "string" }, TypeError, /field 'n'/);
  refuse({ n: undefined }, TypeError, /field 'n'/);
  const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`f${i}`, "i32"]));
  refuse(many, RangeError, /current value is 257/);
  refuse({ ["x".repeat(256)]: "i32" }, RangeError, /255 UTF-8 bytes/);
  // The limits themselves are fine.
  const most: SeqCellSchema = Object.fromEntries(
    Array.from({ length: 256 }, (_, i) => [`f${i}`, "f64" as const]),
  );
  assert.equal(SeqCell.create(most).fields.length, 256);
  assert.equal(SeqCell.create({ ["é".repeat(127)]: "u32" }).fields.length, 1);
});

Deno.test("SeqCell: bad writes name the field and value, and write nothing", () => {
  const cell = SeqCell.create({ i: "i32", u: "u32", f: "f64" }, { initial: { i: 1, u: 2, f: 3 } });
  const before = { version: cell.version, record: cell.read() };
  const refuse = (values: unknown, error: typeof TypeError, pattern: RegExp) => {
    for (
      const write of [
        () => cell.write(values as never),
        () => cell.tryWrite(values as never),
        () => cell.update(() => values as never),
      ]
    ) {
      assert.throws(write, (e) => e instanceof error && pattern.test(e.message));
    }
    assert.deepEqual(cell.read(), before.record);
    assert.equal(cell.version, before.version);
  };
  refuse({ i: 7, nope: 1 }, TypeError, /no field "nope" \(fields: i, u, f\)/);
  refuse({ i: 7, u: "8" }, TypeError, /'u'.*not a number: current value is "8"/);
  refuse({ i: 7, u: 8n }, TypeError, /'u'.*8n/);
  refuse({ f: 1, i: undefined }, TypeError, /'i'.*undefined/);
  refuse({ u: 1, i: 2 ** 31 }, RangeError, /'i'.*2147483648/);
  refuse({ i: -(2 ** 31) - 1 }, RangeError, /'i'.*-2147483649/);
  refuse({ i: 1.5 }, RangeError, /'i'.*1\.5/);
  refuse({ i: NaN }, RangeError, /'i'.*NaN/);
  refuse({ u: -1 }, RangeError, /'u'.*\[0, 4294967295\].*-1/);
  refuse({ u: 2 ** 32 }, RangeError, /'u'.*4294967296/);
  refuse({ u: Infinity }, RangeError, /'u'.*Infinity/);
  refuse(null, TypeError, /'values'/);
  refuse(42, TypeError, /'values'/);
  assert.throws(() => cell.get("nope" as "i"), /no field "nope"/);
  // f64 takes any number, NaN and infinities included.
  cell.write({ f: NaN });
  assert.ok(Number.isNaN(cell.get("f")));
  cell.write({ f: -Infinity });
  assert.equal(cell.read().f, -Infinity);
});

Deno.test("SeqCell: while a worker updates, writers wait or time out but readers read", async () => {
  const heap = SharedHeap.create();
  const cell = SeqCell.create({ v: "i32" }, { heap, initial: { v: 10 } });
  const holder = await holdElsewhere("seqcell-update", cell.handle, heap);
  try {
    // update() holds the writers' mutex only: snapshots stay available.
    assert.equal(cell.read({ timeoutMs: 0 }).v, 10);
    assert.equal(cell.tryRead()?.v, 10);
    assert.equal(cell.get("v"), 10);
    assert.equal(cell.tryWrite({ v: 1 }), false);
    const error = thrown(() => cell.write({ v: 1 }, { timeoutMs: 30 }));
    assert.ok(error instanceof TimeoutError && error.timeoutMs === 30);
    assert.match(error.message, /Cannot write SeqCell as it timed out/);
    assert.throws(() => cell.write({ v: 1 }, { timeoutMs: 0 }), TimeoutError);
    assert.throws(() => cell.update(() => ({ v: 1 }), { timeoutMs: 10 }), TimeoutError);
    await assert.rejects(cell.writeAsync({ v: 1 }, { timeoutMs: 20 }), TimeoutError);
    assert.equal(cell.get("v"), 10);
  } finally {
    await holder.release();
  }
  assert.equal(cell.get("v"), 11);
  assert.ok(cell.tryWrite({ v: 12 }));
  cell.write({ v: 13 }, { timeoutMs: 0 });
  assert.equal(cell.read().v, 13);
});

Deno.test("SeqCell: during a publish, tryRead gives nothing and timed reads time out", () => {
  const cell = SeqCell.create({ v: "i32" }, { initial: { v: 4 } });
  fakeWriteInProgress(cell, true);
  try {
    assert.equal(cell.tryRead(), undefined);
    const error = thrown(() => cell.read({ timeoutMs: 20 }));
    assert.ok(error instanceof TimeoutError);
    assert.match(error.message, /read SeqCell/);
    assert.equal(error.timeoutMs, 20, "the error reports the timeout that was given");
    assert.throws(() => cell.readInto({ v: 0 }, { timeoutMs: 0 }), TimeoutError);
    const fieldError = thrown(() => cell.get("v", { timeoutMs: 15 }));
    assert.ok(fieldError instanceof TimeoutError);
    assert.equal(fieldError.timeoutMs, 15);
  } finally {
    fakeWriteInProgress(cell, false);
  }
  assert.equal(cell.read({ timeoutMs: 0 }).v, 4);
  assert.equal(cell.get("v", { timeoutMs: 0 }), 4);
});

Deno.test("SeqCell: an invalid timeoutMs is a RangeError naming it", async () => {
  const cell = SeqCell.create({ v: "i32" });
  for (const timeoutMs of [-1, NaN, "5"]) {
    const options = { timeoutMs } as unknown as { timeoutMs: number };
    const named = (e: unknown) =>
      e instanceof (typeof timeoutMs === "number" ? RangeError : TypeError) &&
      /'timeoutMs'/.test(e.message);
    assert.throws(() => cell.write({ v: 1 }, options), named);
    assert.throws(() => cell.update(() => ({ v: 1 }), options), named);
    assert.throws(() => cell.read(options), named);
    assert.throws(() => cell.readInto({ v: 0 }, options), named);
    assert.throws(() => cell.get("v", options), named);
    await assert.rejects(cell.writeAsync({ v: 1 }, options), named);
  }
  assert.equal(cell.version, 0);
});

Deno.test("SeqCell: writeAsync on the main thread resolves once a worker's update ends", async () => {
  const cell = SeqCell.create({ v: "i32" });
  const holder = await holdElsewhere("seqcell-update", cell.handle);
  let timerFired = false;
  const pending = cell.writeAsync({ v: 100 });
  setTimeout(() => {
    timerFired = true;
    holder.releaseNow();
  }, 20);
  await pending;
  assert.ok(timerFired, "writeAsync finished before the worker's update ended");
  await holder.release();
  assert.equal(cell.get("v"), 100);
  assert.equal(cell.version, 2);
});

Deno.test("SeqCell termination: an updater killed inside update() blocks writers, not readers", async () => {
  const cell = SeqCell.create({ v: "i32" }, { initial: { v: 3 } });
  const holder = await holdElsewhere("seqcell-update", cell.handle);
  await holder.kill();
  assert.equal(cell.read({ timeoutMs: 100 }).v, 3);
  assert.equal(cell.tryRead()?.v, 3);
  assert.throws(() => cell.write({ v: 1 }, { timeoutMs: 20 }), TimeoutError);
  assert.equal(cell.tryWrite({ v: 1 }), false);
});

Deno.test("SeqCell: attach refuses handles that do not name a SeqCell", () => {
  const heap = SharedHeap.create();
  const cell = SeqCell.create({ v: "i32" }, { heap });
  const bad = (handle: unknown) =>
    assert.throws(() => SeqCell.attach(handle as SharedHandle<"sabre.SeqCell">), HandleError);
  bad(SeqLock.create(heap).handle);
  bad(Mutex.create().handle);
  bad({ ...SeqLock.create(heap).handle, kind: "sabre.SeqCell" });
  bad({ ...SeqCell.create({ v: "i32" }).handle, sab: new SharedArrayBuffer(64) });
  bad({ ...cell.handle, version: 1 });
  bad({ ...cell.handle, version: 3 });
  bad({ ...SeqCell.create({ v: "i32" }).handle, offset: 64 });
  const { offset: _, ...truncated } = cell.handle;
  bad(truncated);
  const handle = cell.handle;
  cell.destroy();
  bad(handle);
});

/** Field names that would break naive code generation, and JS property edge cases. */
const ODD_NAMES = [
  "__proto__",
  'quo"te',
  "it's",
  "back\\slash\\",
  "${x}`",
  "*/ }); throw 1; //",
  '"]; globalThis.pwned = 1; ["',
  "line\nbreak\u2028\u2029",
  "\u0000nul",
  "0",
  "01",
  "-1",
  "4294967295",
  "1.5",
  "",
  "constructor",
  "toString",
  "hasOwnProperty",
  "név ü 🦀",
  "𝒳",
];

/** Checks every read and write path of a cell with fields `names` (ODD_NAMES and more) of mixed types. */
function checkOddNames(names: readonly string[]): void {
  const types = ["i32", "u32", "f64"] as const;
  const schema: SeqCellSchema = Object.fromEntries(names.map((n, i) => [n, types[i % 3]]));
  assert.deepEqual(Object.keys(schema).sort(), [...names].sort());
  const valueOf = (i: number, v: number) => [v - i, v + i, (v + i) / 4][i % 3];
  const record = (v: number) =>
    Object.fromEntries(Object.keys(schema).map((n) => [n, valueOf(names.indexOf(n), v)]));
  const cell = SeqCell.create(schema, { initial: record(100) });
  const same = SeqCell.attach(structuredClone(cell.handle));
  assert.deepEqual(same.fields, cell.fields);
  const expectRecord = (got: Record<string, number>, v: number) => {
    const want = record(v);
    assert.equal(Object.getPrototypeOf(got), Object.prototype);
    assert.ok(Object.hasOwn(got, "__proto__"), "__proto__ is an own field");
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
    for (const name of names) {
      assert.equal(got[name], want[name], `field ${JSON.stringify(name)}`);
    }
  };
  for (const reader of [cell, same]) {
    expectRecord(reader.read(), 100);
    expectRecord(reader.tryRead()!, 100);
    for (const name of names) {
      assert.equal(reader.get(name), record(100)[name], `get(${JSON.stringify(name)})`);
    }
  }
  // readInto: a fresh object, and one whose __proto__ is already an own field.
  expectRecord(same.readInto({}), 100);
  const target = JSON.parse('{"__proto__": -5, "extra": 1}');
  assert.equal(same.readInto(target), target);
  assert.equal(target.extra, 1);
  delete target.extra;
  expectRecord(target, 100);
  // Full writes in schema order, in another order, partial writes and update.
  same.write(record(200));
  expectRecord(cell.read(), 200);
  const reversed = Object.fromEntries(Object.entries(record(300)).reverse());
  cell.write(reversed);
  expectRecord(same.read(), 300);
  cell.write(JSON.parse('{"__proto__": 7}'));
  assert.equal(same.get("__proto__"), 7);
  assert.equal(same.read()["*/ }); throw 1; //"], record(300)["*/ }); throw 1; //"]);
  cell.write(record(400));
  cell.update((r) => {
    expectRecord(r, 400);
    return record(500);
  });
  expectRecord(same.read(), 500);
  assert.equal(cell.version, 6);
  assert.equal((globalThis as Record<string, unknown>).pwned, undefined);
  // An unknown field is still refused, with nothing written.
  assert.throws(() => cell.write({ ...record(1), nope: 1 }), /no field "nope"/);
  expectRecord(same.read(), 500);
}

Deno.test("SeqCell: odd field names (quotes, backslashes, __proto__, numeric-like, unicode) work everywhere", () => {
  checkOddNames(ODD_NAMES);
});

/** Runs `fn` while `new Function` refuses code generation, as under CSP; returns the attempts. */
function withoutCodeGeneration(fn: () => void): number {
  const original = globalThis.Function;
  let attempts = 0;
  globalThis.Function = function () {
    attempts++;
    throw new EvalError("Code generation from strings disallowed for this context");
  } as unknown as FunctionConstructor;
  try {
    fn();
  } finally {
    globalThis.Function = original;
  }
  return attempts;
}

Deno.test("SeqCell: without code generation the generic path behaves the same", async () => {
  // Shapes no other test uses, so no specialised codec is cached for them.
  let cell!: SeqCell<{ g1: "i32"; g2: "u32"; g3: "f64" }>;
  const attempts = withoutCodeGeneration(() => {
    checkOddNames([...ODD_NAMES, "generic"]);
    cell = SeqCell.create({ g1: "i32", g2: "u32", g3: "f64" }, { initial: { g2: 2 ** 32 - 1 } });
  });
  assert.ok(attempts >= 2, "code generation was attempted and refused");
  assert.deepEqual(cell.read(), { g1: 0, g2: 2 ** 32 - 1, g3: 0 });
  cell.write({ g1: -1, g2: 3, g3: -0.5 });
  await cell.writeAsync({ g3: 1.25 });
  assert.deepEqual(cell.tryRead(), { g1: -1, g2: 3, g3: 1.25 });
  assert.deepEqual(cell.readInto({ g1: 0, g2: 0, g3: 0 }), { g1: -1, g2: 3, g3: 1.25 });
  cell.update((r) => ({ g1: r.g1 - 1 }));
  assert.equal(cell.get("g1"), -2);
  assert.throws(() => cell.write({ g1: 1, g2: -1, g3: 0 }), /'g2'.*-1/);
  assert.equal(cell.version, 4);
  fakeWriteInProgress(cell, true);
  try {
    assert.equal(cell.tryRead(), undefined);
    assert.throws(() => cell.read({ timeoutMs: 5 }), TimeoutError);
    assert.throws(() => cell.readInto({ g1: 0, g2: 0, g3: 0 }, { timeoutMs: 0 }), TimeoutError);
  } finally {
    fakeWriteInProgress(cell, false);
  }
});

Deno.test("SeqCell: cells of one schema shape share one generated codec", () => {
  const original = globalThis.Function;
  let generated = 0;
  globalThis.Function = function (...args: string[]) {
    generated++;
    return original(...args);
  } as unknown as FunctionConstructor;
  try {
    const a = SeqCell.create({ shared1: "i32", shared2: "f64" });
    SeqCell.create({ shared1: "i32", shared2: "f64" }, { initial: { shared1: 1 } });
    SeqCell.attach(a.handle);
    SeqCell.create({ shared2: "f64", shared1: "i32" }); // another order: another shape
  } finally {
    globalThis.Function = original;
  }
  assert.equal(generated, 2);
});

Deno.test("SeqCell: full writes check values in order, read each once, and write nothing when one is bad", async () => {
  const cell = SeqCell.create({ i: "i32", u: "u32", f: "f64" }, { initial: { i: 1, u: 2, f: 3 } });
  const refuse = (values: object, error: typeof TypeError, pattern: RegExp) => {
    assert.throws(
      () => cell.write(values as never),
      (e) => e instanceof error && pattern.test(e.message),
    );
    assert.deepEqual(cell.read(), { i: 1, u: 2, f: 3 });
  };
  refuse({ i: 7, u: 8, f: "9" }, TypeError, /'f'.*not a number: current value is "9"/);
  refuse({ i: 2 ** 31, u: -1, f: 0 }, RangeError, /'i'.*2147483648/);
  refuse({ i: 0, u: 2 ** 32, f: 0 }, RangeError, /'u'.*4294967296/);
  refuse({ i: 0.5, u: 0, f: 0 }, RangeError, /'i'.*0\.5/);
  refuse({ i: 0, u: NaN, f: 0 }, RangeError, /'u'.*NaN/);
  refuse({ i: undefined, u: 0, f: 0 }, TypeError, /'i'.*undefined/);
  await assert.rejects(cell.writeAsync({ i: 0, u: 0, f: 0n } as never), /'f'.*0n/);
  assert.equal(cell.version, 1);
  // Getters run once each, in key order; -0 is a valid i32/u32 (stored as 0).
  const order: string[] = [];
  const values = {
    get i() {
      order.push("i");
      return -0;
    },
    get u() {
      order.push("u");
      return -0;
    },
    get f() {
      order.push("f");
      return -0;
    },
  };
  cell.write(values);
  assert.deepEqual(order, ["i", "u", "f"]);
  const read = cell.read();
  assert.ok(Object.is(read.i, 0) && Object.is(read.u, 0) && Object.is(read.f, -0));
  // Inherited fields are not written, as with Object.entries.
  const inherited = Object.assign(Object.create({ f: 50 }), { i: 5, u: 6 });
  cell.write(inherited);
  assert.deepEqual(cell.read(), { i: 5, u: 6, f: -0 });
  // writeAsync keeps its own copy of the encoded words while it waits.
  // (An overlapping sync write would deadlock this thread; a same-shape
  // encode by another cell overwrites the shared scratch instead.)
  const other = SeqCell.create({ i: "i32", u: "u32", f: "f64" });
  const pending = cell.writeAsync({ i: 10, u: 11, f: 12.5 });
  other.write({ i: 20, u: 21, f: 22.5 });
  await pending;
  assert.deepEqual(cell.read(), { i: 10, u: 11, f: 12.5 });
  assert.equal(cell.version, 4);
  assert.equal(cell.tryWrite({ i: -3, u: 3, f: 3.5 }), true);
  assert.deepEqual(cell.read(), { i: -3, u: 3, f: 3.5 });
});

Deno.test("SeqCell: readInto decodes fully before calling a target's setters", () => {
  const one = SeqCell.create({ s1: "i32", s2: "f64" }, { initial: { s1: 1, s2: 1.5 } });
  const two = SeqCell.create({ s1: "i32", s2: "f64" }, { initial: { s1: 2, s2: 2.5 } });
  const seen: number[] = [];
  const target = {
    set s1(v: number) {
      seen.push(v);
      two.read(); // same shape: reuses the codec and the f64 scratch
    },
    set s2(v: number) {
      seen.push(v);
    },
  };
  one.readInto(target as never);
  assert.deepEqual(seen, [1, 1.5]);
});

Deno.test("SeqCell: a timeoutMs getter writing a cell of the same shape does not change what write publishes", () => {
  // The shape's encode scratch is shared; acquire() reads options.timeoutMs after encoding.
  const a = SeqCell.create({ sc1: "i32", sc2: "f64" });
  const b = SeqCell.create({ sc1: "i32", sc2: "f64" });
  a.write({ sc1: 1, sc2: 1.5 }, {
    get timeoutMs() {
      b.write({ sc1: 2, sc2: 2.5 });
      return 1000;
    },
  });
  assert.deepEqual(a.read(), { sc1: 1, sc2: 1.5 });
  assert.deepEqual(b.read(), { sc1: 2, sc2: 2.5 });
  // The same cell: the outer write publishes last, so its values win.
  a.write({ sc1: 3, sc2: 3.5 }, {
    get timeoutMs() {
      a.write({ sc1: 4, sc2: 4.5 });
      return undefined;
    },
  });
  assert.deepEqual(a.read(), { sc1: 3, sc2: 3.5 });
  assert.equal(a.version, 3);
});

Deno.test("SeqCell: field names come back from attach exactly (leading U+FEFF kept, lone surrogates refused)", () => {
  const cell = SeqCell.create({ "\ufeffbom": "i32", bom: "u32" }, {
    initial: { "\ufeffbom": -4, bom: 4 },
  });
  const same = SeqCell.attach(structuredClone(cell.handle));
  assert.deepEqual(same.fields, ["\ufeffbom", "bom"]);
  assert.deepEqual(same.read(), { "\ufeffbom": -4, bom: 4 });
  same.write({ "\ufeffbom": -5 });
  assert.equal(cell.get("\ufeffbom"), -5);
  // Both would be stored as U+FFFD, and attach() would see one name twice.
  for (const name of ["\ud800", "a\udc00", "\udbff\ud800"]) {
    const e = thrown(() => SeqCell.create({ [name]: "i32", "\udc00": "f64" }));
    assert.ok(e instanceof TypeError && /well-formed/.test(e.message), String(e));
  }
  assert.deepEqual(SeqCell.create({ "\ud83e\udd80": "i32" }).fields, ["🦀"]);
});

Deno.test("SeqCell: attach refuses a cell whose header or stored schema is corrupt", () => {
  const tampered = (
    schema: SeqCellSchema,
    edit: (words: Int32Array, bytes: Uint8Array) => void,
  ) => {
    const cell = SeqCell.create(schema);
    const { sab, offset } = cell.handle;
    edit(new Int32Array(sab, offset, 8), new Uint8Array(sab, offset));
    return () => SeqCell.attach(cell.handle);
  };
  const refused = (fn: () => unknown, pattern: RegExp) => {
    const e = thrown(fn);
    assert.ok(e instanceof HandleError && pattern.test(e.message), String(e));
  };
  // Schema bytes start after 8 header words and the data words.
  refused(tampered({ t: "i32" }, (_, b) => b[36] = 9), /type code 9/);
  refused(tampered({ t: "i32" }, (_, b) => b[36] = 0), /type code 0/);
  refused(tampered({ t: "f64" }, (_, b) => b[40] = 1), /take 1 data words, the header says 2/);
  refused(tampered({ t: "f64", u: "f64" }, (w) => w[3] = 3), /corrupt/);
  refused(tampered({ t: "f64", u: "f64" }, (w) => (w[3] = 0, w[6] = 0)), /header is corrupt/);
  refused(tampered({ z: "i32" }, (w) => w[2] = 0), /header is corrupt/);
  refused(tampered({ z: "i32" }, (w) => w[2] = 2 ** 31 - 1), /header is corrupt/);
  refused(tampered({ y: "i32", z: "i32" }, (_, b) => b[40 + 5] = 0x79), /"y" appears twice/);
  refused(tampered({ y: "i32" }, (_, b) => b[36 + 2] = 0xff), /not UTF-8/);
  refused(tampered({ y: "i32" }, (_, b) => b[36 + 1] = 200), /past the schema's end/);
  refused(tampered({ long: "i32" }, (_, b) => b[36 + 1] = 2), /2 bytes follow/);
  refused(tampered({ long: "i32" }, (w) => w[6] = 5), /field 0's name lies past/);
});

Deno.test("bad input: a misspelt SeqCell option throws TypeError naming it", () => {
  const heap = SharedHeap.create();
  assert.throws(
    () => SeqCell.create({ a: "i32" }, { heep: heap } as never),
    (e) => e instanceof TypeError && /no field 'heep'.*'heap'/.test(e.message),
  );
});
