import assert from "node:assert/strict";
import { SharedHeap, TimeoutError } from "../memory/mod.ts";
import { runWorkers, spawnWorkers, WorkerFailedError } from "./harness.ts";
import { createRetireAudit, doubleRetires, installRetireAudit } from "./retire_audit.ts";

const basic = new URL("./_fixtures/basic.ts", import.meta.url);
const slowLoad = new URL("./_fixtures/slow_load.ts", import.meta.url);
const heapWorkers = new URL("./_fixtures/heap_workers.ts", import.meta.url);
const failingModule = new URL("./_fixtures/failing_module.ts", import.meta.url);

/** Asserts that `promise` rejects with a WorkerFailedError and returns it. */
async function failure(promise: Promise<unknown>): Promise<WorkerFailedError> {
  let caught: unknown;
  await assert.rejects(promise, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof WorkerFailedError, `expected WorkerFailedError, got ${caught}`);
  return caught;
}

Deno.test("harness: results come back in index order, with per-index args", async () => {
  const results = await runWorkers<{ id: number }, string>({
    module: basic,
    fn: "echo",
    workers: 5,
    args: (index) => ({ id: 100 + index }),
  });
  assert.deepEqual(results, ["0:100", "1:101", "2:102", "3:103", "4:104"]);
});

Deno.test("harness: one args value reaches every worker; async functions work", async () => {
  assert.deepEqual(
    await runWorkers<{ id: number }, string>({
      module: basic.href,
      fn: "echo",
      workers: 3,
      args: { id: 7 },
    }),
    ["0:7", "1:7", "2:7"],
  );
  assert.deepEqual(await runWorkers({ module: basic, fn: "asyncDouble", workers: 4 }), [
    0,
    2,
    4,
    6,
  ]);
});

Deno.test("harness: workers start together, after every worker loaded and joined the heap", async () => {
  // The module sleeps a random time while it loads, so the workers become
  // ready at different moments; without the start barrier an early worker
  // would see fewer joined workers.
  const heap = SharedHeap.create();
  for (let run = 0; run < 3; run++) {
    const joined = await runWorkers<undefined, number>({
      module: slowLoad,
      fn: "countJoined",
      workers: 4,
      heap,
    });
    assert.deepEqual(joined, [4, 4, 4, 4]);
  }
  assert.equal(heap.stats().workers, 0);
});

Deno.test("harness: every worker takes exactly one ticket after the start", async () => {
  const counter = new SharedArrayBuffer(4);
  const tickets = await runWorkers<{ counter: SharedArrayBuffer }, number>({
    module: basic,
    fn: "ticket",
    workers: 6,
    args: { counter },
  });
  assert.deepEqual([...tickets].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5]);
  assert.equal(new Int32Array(counter)[0], 6);
});

Deno.test("harness: a throwing worker rejects with WorkerFailedError; the others are stopped", async () => {
  const group = spawnWorkers<{ failIndex: number }, string>({
    module: basic,
    fn: "throwOne",
    workers: 4,
    args: { failIndex: 2 },
    seed: 1234,
  });
  // The others hang until stopped: a TimeoutError would mean they were not.
  const error = await failure(group.results);
  assert.equal(error.index, 2);
  assert.equal(error.phase, "run");
  assert.equal(error.seed, 1234);
  assert.equal(error.workerError.name, "RangeError");
  assert.equal(error.workerError.message, "boom from worker 2");
  assert.match(
    error.message,
    /^Worker 2 of 4 failed running "throwOne" \(seed 1234\): RangeError: boom from worker 2/,
  );
  assert.match(error.message, /basic\.ts/, "the worker's stack is included");
  await assert.rejects(group.done, WorkerFailedError);
  await group.terminateAll(); // no-op now, and never throws
});

Deno.test("harness: runWorkers rejects for thrown non-Errors and unhandled rejections", async () => {
  const thrown = await failure(runWorkers({ module: basic, fn: "throwString", workers: 2 }));
  assert.match(thrown.message, /plain string thrown/);

  const floating = await failure(
    runWorkers({ module: basic, fn: "floatingRejection", workers: 1 }),
  );
  assert.equal(floating.workerError.name, "TypeError");
  assert.match(floating.message, /nobody handles this/);

  const unsendable = await failure(
    runWorkers({ module: basic, fn: "uncloneableResult", workers: 1 }),
  );
  assert.equal(unsendable.phase, "result");
  assert.match(unsendable.message, /DataCloneError|could not be cloned/);
});

Deno.test("harness: a module that fails to load, or lacks the export, is reported", async () => {
  const thrown = await failure(runWorkers({ module: failingModule, fn: "never", workers: 2 }));
  assert.equal(thrown.phase, "load");
  assert.match(thrown.message, /failed to load "never".*this module fails while it loads/s);

  const missing = await failure(
    runWorkers({
      module: new URL("./_fixtures/no_such_module.ts", import.meta.url),
      fn: "x",
      workers: 1,
    }),
  );
  assert.equal(missing.phase, "load");
  assert.match(missing.message, /no_such_module\.ts/);

  const noExport = await failure(runWorkers({ module: basic, fn: "notExported", workers: 1 }));
  assert.equal(noExport.phase, "load");
  assert.match(noExport.message, /no function of that name \(it exports .*"echo"/);
});

/** Loads the basic fixture once, so that later groups start fast even with a cold module cache. */
async function warmUp(): Promise<void> {
  await runWorkers({ module: basic, fn: "echo", workers: 1, args: { id: 0 } });
}

Deno.test("harness: the timeout stops the group and names the worker that had not finished", async () => {
  await warmUp();
  const group = spawnWorkers<{ stuckIndex: number }, number>({
    module: basic,
    fn: "stuckOne",
    workers: 3,
    args: { stuckIndex: 1 },
    timeoutMs: 3000,
    seed: 99,
  });
  let caught: unknown;
  await assert.rejects(group.results, (e: unknown) => (caught = e, true));
  assert.ok(caught instanceof TimeoutError, `expected TimeoutError, got ${caught}`);
  assert.equal(caught.timeoutMs, 3000);
  assert.match(
    caught.message,
    /"stuckOne" in 3 workers.*3000 ms: worker 1 \(running\) had not finished \(seed 99\)$/,
  );
  await assert.rejects(group.done, TimeoutError);
});

Deno.test("harness: terminate(i) stops one worker mid-loop; the others finish", async () => {
  const rounds = 200_000;
  const group = spawnWorkers<{ victim: number; rounds: number }, number>({
    module: basic,
    fn: "victimLoop",
    workers: 3,
    args: { victim: 1, rounds },
  });
  try {
    for await (const message of group.messages()) {
      if (message.index === 1) break; // the victim is spinning now
    }
    await group.terminate(1);
    await group.terminate(1); // idempotent
    assert.deepEqual(await group.results, [rounds, undefined, rounds]);
    await group.done;
  } finally {
    await group.terminateAll();
  }
});

Deno.test("harness: terminate() stops an async function suspended at an await", async () => {
  await using group = spawnWorkers({ module: basic, fn: "awaitForever", workers: 2 });
  const waiting = new Set<number>();
  await new Promise<void>((resolve) => {
    group.onMessage((index) => {
      waiting.add(index);
      if (waiting.size === 2) resolve();
    });
  });
  await group.terminateAll();
  assert.deepEqual(await group.results, [undefined, undefined]);
});

for (const fn of ["hangInTry", "waitInTry"]) {
  Deno.test(`harness: a stopped worker dies where it is, without running finally blocks (${fn})`, async () => {
    const flag = new SharedArrayBuffer(4);
    const group = spawnWorkers<{ flag: SharedArrayBuffer }>({
      module: basic,
      fn,
      workers: 3,
      args: { flag },
    });
    try {
      let posted = 0;
      await new Promise<void>((resolve) => group.onMessage(() => ++posted === 3 && resolve()));
      await group.terminateAll();
      assert.deepEqual(await group.results, [undefined, undefined, undefined]);
      // Give a worker that was not really stopped time to unwind.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(new Int32Array(flag)[0], 0, "a finally block ran after the stop");
    } finally {
      await group.terminateAll();
    }
  });
}

Deno.test("harness: terminating a worker breaks the barrier for the others", async () => {
  const group = spawnWorkers<{ hanger: number }, number>({
    module: basic,
    fn: "barrierRounds",
    workers: 3,
    args: { hanger: 0 },
  });
  try {
    await new Promise<void>((resolve) => group.onMessage(() => resolve()));
    void group.terminate(0);
    const error = await failure(group.results);
    assert.notEqual(error.index, 0);
    assert.equal(error.workerError.name, "BrokenBarrierError");
  } finally {
    await group.terminateAll();
  }
});

Deno.test("harness: a worker that is asked to stop but never reaches a checkpoint times out", async () => {
  await warmUp();
  const group = spawnWorkers<{ stuckIndex: number }, number>({
    module: basic,
    fn: "stuckOne",
    workers: 2,
    args: { stuckIndex: 0 },
    timeoutMs: 3000,
  });
  try {
    // Worker 1 returns at once; worker 0 posts, then parks without a checkpoint.
    await new Promise<void>((resolve) => group.onMessage(() => resolve()));
    await group.terminate(0); // resolves when the timeout gives up on it
    await assert.rejects(group.results, /worker 0 \(asked to stop, never reached a checkpoint\)/);
  } finally {
    await group.terminateAll();
  }
});

Deno.test("harness stress: 8 workers on 2 cores run 200 barrier phases", async () => {
  const counter = new SharedArrayBuffer(4);
  const phases = 200 * Number(Deno.env.get("SABRE_STRESS") ?? "1");
  const results = await runWorkers<{ counter: SharedArrayBuffer; phases: number }, number>({
    module: basic,
    fn: "phases",
    workers: 8,
    args: { counter, phases },
  });
  assert.deepEqual(results, new Array(8).fill(phases));
  assert.equal(new Int32Array(counter)[0], 8 * phases);
});

Deno.test("harness: seeds are reproducible, distinct per worker, and reported", async () => {
  const options = { module: basic, fn: "draws", workers: 3, seed: 2024 };
  const first = await runWorkers<undefined, number[]>(options);
  const again = await runWorkers<undefined, number[]>(options);
  assert.deepEqual(first, again);
  assert.equal(new Set(first.map((draws) => draws[0])).size, 3, "per-worker seeds differ");
  for (const [, a, b, n] of first) {
    assert.ok(a >= 0 && a < 1 && b >= 0 && b < 1 && a !== b);
    assert.ok(Number.isInteger(n) && n >= 0 && n < 1000);
  }
  const other = await runWorkers<undefined, number[]>({ ...options, seed: 2025 });
  assert.notDeepEqual(other, first);

  await using group = spawnWorkers({ module: basic, fn: "echo", workers: 1, args: { id: 0 } });
  assert.ok(Number.isInteger(group.seed) && group.seed >= 0 && group.seed <= 0xffffffff);
  await group.results;
});

Deno.test("harness: messages() and onMessage() see every post, in each worker's order", async () => {
  const group = spawnWorkers<{ rounds: number }, number>({
    module: basic,
    fn: "countRounds",
    workers: 3,
    args: { rounds: 5 },
  });
  const fromListener: string[] = [];
  const off = group.onMessage((index, value) => fromListener.push(`${index}:${value}`));
  const perWorker: number[][] = [[], [], []];
  for await (const { index, value } of group.messages()) perWorker[index].push(value as number);
  off();
  assert.deepEqual(perWorker, [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]]);
  assert.equal(fromListener.length, 15);
  assert.deepEqual(await group.results, [5, 5, 5]);
});

Deno.test("harness: a listener that throws fails the group with its error", async () => {
  const group = spawnWorkers({ module: basic, fn: "spinUntilStopped", workers: 2 });
  group.onMessage(() => {
    throw new Error("listener refused");
  });
  await assert.rejects(group.results, /listener refused/);
  await assert.rejects(group.done, /listener refused/);
});

Deno.test("harness: invalid options throw before any worker starts", () => {
  const ok = { module: basic, fn: "echo", workers: 1 };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...ok, workers: 0 }, /'workers' must be an integer from 1 to 1024: current value is 0/],
    [{ ...ok, workers: 2.5 }, /'workers'/],
    [{ ...ok, fn: "" }, /'fn' must be a non-empty export name/],
    [{ ...ok, module: "./_fixtures/basic.ts" }, /'module' must be an absolute URL/],
    [{ ...ok, timeoutMs: 0 }, /'timeoutMs' must be a positive number: current value is 0/],
    [{ ...ok, seed: -1 }, /'seed' must be an integer from 0 to 2\^32 - 1: current value is -1/],
    [{ ...ok, heap: 5 }, /'heap' must be a SharedHeap/],
    [{ ...ok, args: { f: () => {} } }, /arguments of worker 0 cannot be sent/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => spawnWorkers(options as never), message);
  }
});

Deno.test("harness: terminate() checks its index", async () => {
  await using group = spawnWorkers({ module: basic, fn: "echo", workers: 2, args: { id: 1 } });
  assert.throws(
    () => group.terminate(2),
    /'index' must be an integer from 0 to 1: current value is 2/,
  );
  await group.results;
});

Deno.test("harness + heap: workers attach, join distinct slots and leave the registry", async () => {
  const heap = SharedHeap.create({ maxWorkers: 8 });
  const slots = await runWorkers<undefined, number>({
    module: heapWorkers,
    fn: "slotOf",
    workers: 8,
    heap,
  });
  assert.deepEqual([...slots].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(heap.stats().workers, 0);
});

Deno.test("harness + heap: a worker stopped mid-churn is evicted; its slot is reused", async () => {
  // The test's own thread joins too (it may use the heap), so it counts as one.
  const heap = SharedHeap.create({ maxWorkers: 5 });
  heap.join();
  for (let trial = 0; trial < 3; trial++) {
    const group = spawnWorkers({ module: heapWorkers, fn: "churnUntilStopped", workers: 4, heap });
    try {
      const seen = new Set<number>();
      for await (const { index } of group.messages()) {
        seen.add(index);
        if (seen.size === 4) break;
      }
      assert.equal(heap.stats().workers, 5);
      await group.terminate(trial);
      assert.equal(heap.stats().workers, 4, "the stopped worker's slot was evicted");
      await group.terminateAll();
      assert.deepEqual(await group.results, [undefined, undefined, undefined, undefined]);
    } finally {
      await group.terminateAll();
    }
    assert.equal(heap.stats().workers, 1);
  }
  // Every slot but the test's is free again: a full group can join.
  const slots = await runWorkers<undefined, number>({
    module: heapWorkers,
    fn: "slotOf",
    workers: 4,
    heap,
  });
  assert.equal(new Set([...slots, heap.slot]).size, 5);
  heap.close();
});

Deno.test("harness + heap: a worker that dies pinned is evicted, so epochs move on", async () => {
  const heap = SharedHeap.create();
  heap.join();
  const group = spawnWorkers({ module: heapWorkers, fn: "diePinned", workers: 1, heap });
  try {
    await new Promise<void>((resolve) => group.onMessage(() => resolve()));
    assert.equal(heap.stats().workers, 2);
    await group.terminate(0);
    assert.equal(heap.stats().workers, 1);
    assert.deepEqual(await group.results, [undefined]);
  } finally {
    await group.terminateAll();
  }
  heap.close();
});

Deno.test("harness + heap: after a failure the other workers stop and are evicted", async () => {
  const heap = SharedHeap.create();
  heap.join();
  const group = spawnWorkers({ module: heapWorkers, fn: "failWhileOthersChurn", workers: 4, heap });
  const error = await failure(group.results);
  assert.equal(error.index, 3);
  await assert.rejects(group.done, WorkerFailedError);
  assert.equal(heap.stats().workers, 1, "every worker left or was evicted");
  heap.close();
});

Deno.test("harness + heap: returning with a pinned epoch fails in the close phase", async () => {
  const heap = SharedHeap.create();
  const error = await failure(
    runWorkers({ module: heapWorkers, fn: "returnPinned", workers: 1, heap }),
  );
  assert.equal(error.phase, "close");
  assert.match(error.message, /failed to close the heap after "returnPinned"/);
});

Deno.test("retire audit: counts a block retired twice, not one retired again after reuse", () => {
  const heap = SharedHeap.create({ maxBytes: 1 << 20 });
  const audit = createRetireAudit(heap);
  installRetireAudit(heap, audit);
  const a = heap.allocate(24);
  heap.retire(a);
  assert.equal(doubleRetires(audit).count, 0);
  // Freed and handed out again: a new life, so a retire is fine.
  for (let i = 0; i < 8; i++) heap.collect();
  const blocks: number[] = [];
  for (let i = 0; i < 10_000 && !blocks.includes(a); i++) blocks.push(heap.allocate(24));
  assert.ok(blocks.includes(a), "the retired block was never reused");
  heap.retire(a);
  assert.equal(doubleRetires(audit).count, 0);
  heap.retire(a);
  assert.deepEqual(doubleRetires(audit), { count: 1, pointer: a });
});

Deno.test("retire audit: a group run with retireAudit rejects when a worker retired a block twice", async () => {
  const heap = SharedHeap.create({ maxBytes: 1 << 20 });
  const module = heapWorkers;
  await assert.rejects(
    runWorkers({ module, fn: "retireTwice", workers: 1, heap, retireAudit: true }),
    /1 blocks were retired twice in the heap of "retireTwice" workers/,
  );
  // Without the audit the same run passes (the heap does not check).
  const other = SharedHeap.create({ maxBytes: 1 << 20 });
  await runWorkers({ module, fn: "retireTwice", workers: 1, heap: other, retireAudit: false });
});
