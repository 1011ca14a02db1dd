import assert from "node:assert/strict";
import {
  formatRecord,
  HistoryClock,
  type HistoryClockHandle,
  HistoryRecorder,
  isPending,
  mergeHistories,
  type OpRecord,
} from "./history.ts";
import { checkLinearizable, counterModel } from "./linearizability.ts";

Deno.test("HistoryClock ticks are shared by every view of one clock", () => {
  const clock = HistoryClock.create();
  const other = HistoryClock.attach(structuredClone(clock.handle));
  assert.equal(clock.now(), 0);
  assert.equal(clock.tick(), 1);
  assert.equal(other.tick(), 2);
  assert.equal(clock.tick(), 3);
  assert.equal(other.now(), 3);
  assert.equal(other.id, clock.id);
  assert.notEqual(clock.id, 0);
  assert.notEqual(HistoryClock.create().id, clock.id);
});

Deno.test("HistoryClock can live at an offset of a larger buffer", () => {
  const sab = new SharedArrayBuffer(64);
  const words = new Int32Array(sab);
  words[4] = 99;
  const clock = HistoryClock.create(sab, 16);
  assert.equal(words[4], 0, "create starts the clock at 0");
  clock.tick();
  clock.tick();
  assert.equal(words[4], 2);
  assert.equal(words[5], clock.id);
  assert.equal(HistoryClock.attach(clock.handle).now(), 2);
  assert.throws(() => HistoryClock.create(sab, 6), RangeError);
  assert.throws(() => HistoryClock.create(sab, 60), /byteLength of 64/);
});

Deno.test("HistoryClock.attach rejects what is not a clock handle", () => {
  const good = HistoryClock.create().handle;
  assert.throws(() => HistoryClock.attach({} as HistoryClockHandle), TypeError);
  assert.throws(() => HistoryClock.attach(null as unknown as HistoryClockHandle), TypeError);
  assert.throws(
    () => HistoryClock.attach({ ...good, sab: new ArrayBuffer(8) as unknown as SharedArrayBuffer }),
    TypeError,
  );
  assert.throws(
    () => HistoryClock.attach({ ...good, version: 2 as 1 }),
    /'handle.version' must be 1: current value is 2/,
  );
});

Deno.test("HistoryClock.fromView and local have no handle", () => {
  const words = new Int32Array(new SharedArrayBuffer(8));
  const clock = HistoryClock.fromView(words);
  assert.equal(clock.tick(), 1);
  assert.equal(words[0], 1);
  assert.equal(clock.id, 0);
  assert.throws(() => clock.handle, TypeError);
  assert.throws(() => HistoryClock.local().handle, TypeError);
  assert.throws(() => HistoryClock.fromView(new Int32Array(2)), TypeError);
});

Deno.test("HistoryRecorder records invoke and response around each operation", () => {
  const clock = HistoryClock.create();
  const rec = new HistoryRecorder(2, clock);
  const args = ["k", 1];
  const id = rec.invoke("set", args);
  args[1] = 5; // mutating the caller's array must not change the record
  rec.respond(id, undefined);
  const got = rec.record("get", ["k"], () => 1);
  assert.equal(got, 1);
  assert.deepEqual(rec.records, [
    {
      worker: 2,
      seq: 0,
      op: "set",
      args: ["k", 1],
      invoke: 1,
      response: 2,
      result: undefined,
      clock: clock.id,
    },
    {
      worker: 2,
      seq: 1,
      op: "get",
      args: ["k"],
      invoke: 3,
      response: 4,
      result: 1,
      clock: clock.id,
    },
  ]);
  assert.deepEqual(structuredClone(rec.records), rec.records, "records are plain data");
  assert.equal(rec.worker, 2);
});

Deno.test("HistoryRecorder leaves an operation that throws pending", () => {
  const rec = new HistoryRecorder(0);
  assert.throws(() =>
    rec.record("pop", [], () => {
      throw new Error("boom");
    }), /boom/);
  assert.equal(rec.records.length, 1);
  assert.ok(isPending(rec.records[0]));
  assert.equal(rec.records[0].response, null);
  assert.match(formatRecord(rec.records[0]), /^w0#0 pop\(\) pending \[1\.\.\]$/);
});

Deno.test("HistoryRecorder rejects bad ids, double responses and bad worker indices", () => {
  const rec = new HistoryRecorder(0);
  const id = rec.invoke("read");
  rec.respond(id, 1);
  assert.throws(() => rec.respond(id, 2), /already responded/);
  assert.throws(
    () => rec.respond(7, 2),
    /'id' must be a pending operation of worker 0: current value is 7/,
  );
  assert.throws(() => new HistoryRecorder(-1), RangeError);
  assert.throws(() => new HistoryRecorder(1.5), RangeError);
  assert.throws(() => rec.invoke(3 as unknown as string), TypeError);
});

Deno.test("mergeHistories sorts by invoke time and keeps one copy per operation", () => {
  const clock = HistoryClock.create();
  const a = new HistoryRecorder(0, clock);
  const b = new HistoryRecorder(1, clock);
  const ia = a.invoke("write", [1]); // 1
  const snapshot = structuredClone(a.records); // sent while the write was running
  b.record("read", [], () => 0); // 2..3
  a.respond(ia, undefined); // 4
  a.record("read", [], () => 1); // 5..6
  const history = mergeHistories([snapshot, b.records, a.records]);
  assert.deepEqual(
    history.map((r) => [r.worker, r.seq, r.invoke, r.response]),
    [[0, 0, 1, 4], [1, 0, 2, 3], [0, 1, 5, 6]],
  );
  // A snapshot alone keeps the operation pending.
  assert.equal(mergeHistories([snapshot])[0].response, null);
});

Deno.test("mergeHistories rejects records from different clocks", () => {
  const a = new HistoryRecorder(0, HistoryClock.create());
  const b = new HistoryRecorder(1, HistoryClock.create());
  a.record("read", [], () => 0);
  b.record("read", [], () => 0);
  assert.throws(() => mergeHistories([a.records, b.records]), /different clocks/);
  // Recorders made without a clock get private clocks, which must not mix either.
  const c = new HistoryRecorder(0);
  const d = new HistoryRecorder(1);
  c.record("read", [], () => 0);
  d.record("read", [], () => 0);
  assert.throws(() => mergeHistories([c.records, d.records]), /different clocks/);
});

Deno.test("mergeHistories rejects impossible records", () => {
  const base: OpRecord = {
    worker: 0,
    seq: 0,
    op: "read",
    args: [],
    invoke: 5,
    response: 6,
    result: 0,
    clock: 1,
  };
  assert.throws(() => mergeHistories([[{ ...base, response: 4 }]]), /must not precede/);
  assert.throws(
    () => mergeHistories([[base, { ...base, seq: 1, invoke: 5.5, response: 7 }]]),
    /worker 0's operations overlap/,
  );
  assert.throws(
    () =>
      mergeHistories([[
        base,
        { ...base, seq: 1, invoke: 7, response: null },
        { ...base, seq: 2, invoke: 9, response: 10 },
      ]]),
    /overlap/,
    "an operation after a pending one of the same worker",
  );
  assert.throws(() => mergeHistories([[base], [{ ...base, response: 9 }]]), /disagree/);
  assert.equal(mergeHistories([]).length, 0);
});

// Each worker runs fetchAndAdd on one shared Int32 counter and records its
// history with the shared clock. `atomic: false` splits the add into a load
// and a store, a classic lost-update bug.
const workerSource = (historyUrl: string) => `
import { HistoryClock, HistoryRecorder } from ${JSON.stringify(historyUrl)};
self.onmessage = (e) => {
  const { index, clock, shared, ops, atomic } = e.data;
  const rec = new HistoryRecorder(index, HistoryClock.attach(clock));
  const words = new Int32Array(shared); // [0]: start flag, [1]: counter
  self.postMessage("ready");
  Atomics.wait(words, 0, 0);
  for (let i = 0; i < ops; i++) {
    const delta = 1 + ((index + i) % 3);
    rec.record("fetchAndAdd", [delta], () => {
      if (atomic) return Atomics.add(words, 1, delta);
      const old = Atomics.load(words, 1);
      for (let spin = 0; spin < 50; spin++) Atomics.load(words, 0);
      Atomics.store(words, 1, old + delta);
      return old;
    });
  }
  self.postMessage(rec.records);
};
`;

async function runCounterWorkers(workers: number, ops: number, atomic: boolean) {
  const url = URL.createObjectURL(
    new Blob([workerSource(new URL("./history.ts", import.meta.url).href)], {
      type: "text/javascript",
    }),
  );
  const clock = HistoryClock.create();
  const shared = new SharedArrayBuffer(8);
  const words = new Int32Array(shared);
  const spawned: Worker[] = [];
  try {
    const done: Promise<OpRecord[]>[] = [];
    // Start workers one at a time, so that only the first loads the module cold.
    for (let index = 0; index < workers; index++) {
      const w = new Worker(url, { type: "module" });
      spawned.push(w);
      const messages: ((data: unknown) => void)[] = [];
      const failed = new Promise<never>((_, reject) => {
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`worker ${index} failed: ${e.message}`));
        };
      });
      w.onmessage = (e) => messages.shift()?.(e.data);
      const next = () => Promise.race([new Promise((r) => messages.push(r)), failed]);
      const ready = next();
      const records = next() as Promise<OpRecord[]>;
      w.postMessage({ index, clock: clock.handle, shared, ops, atomic });
      await ready;
      done.push(records);
    }
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    const history = mergeHistories(await Promise.all(done));
    return { history, clock, final: Atomics.load(words, 1) };
  } finally {
    for (const w of spawned) w.terminate();
    URL.revokeObjectURL(url);
  }
}

Deno.test("histories recorded in workers share one clock and check as linearizable", async () => {
  const { history, clock } = await runCounterWorkers(4, 100, true);
  assert.equal(history.length, 400);
  const ticks = history.flatMap((r) => [r.invoke, r.response]);
  assert.equal(new Set(ticks).size, ticks.length, "every tick is unique across workers");
  assert.equal(clock.now(), 800);
  const result = checkLinearizable(history, counterModel(0));
  assert.equal(result.ok, true, result.ok === false ? result.reason : "");
});

Deno.test("a lost update in a racy counter makes the worker history fail the check", async () => {
  const { history, final } = await runCounterWorkers(4, 100, false);
  const sum = history.reduce((s, r) => s + (r.args[0] as number), 0);
  const result = checkLinearizable(history, counterModel(0), { timeoutMs: 10_000 });
  // The race need not strike in a given run; when it did, the check must see it.
  if (final !== sum) assert.equal(result.ok, false);
  if (result.ok === true) assert.equal(final, sum);
});
