import assert from "node:assert/strict";
import { HandleError, TimeoutError } from "../memory/mod.ts";
import { Barrier, BrokenBarrierError } from "./barrier.ts";
import type { BarrierJob, BarrierReport } from "./_fixtures/barrier_worker.ts";

const WORKER = new URL("./_fixtures/barrier_worker.ts", import.meta.url).href;
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");

/** Starts one plain worker per job and returns their reports; always terminates them. */
async function runJobs(jobs: BarrierJob[], during?: () => Promise<void>): Promise<BarrierReport[]> {
  const workers = jobs.map(() => new Worker(WORKER, { type: "module" }));
  try {
    const reports = workers.map((worker, i) =>
      new Promise<BarrierReport>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<BarrierReport>) => resolve(event.data);
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(`worker ${i}: ${event.message}`));
        };
        worker.postMessage(jobs[i]);
      })
    );
    if (during !== undefined) await during();
    return await Promise.all(reports);
  } finally {
    for (const worker of workers) worker.terminate();
  }
}

function generationJobs(barrier: Barrier, workers: number, generations: number): BarrierJob[] {
  const counters = new SharedArrayBuffer(4 * (1 + generations));
  return Array.from({ length: workers }, (_, index) => ({
    handle: barrier.handle,
    index,
    mode: "generations" as const,
    generations,
    counters,
    timeoutMs: 60_000,
  }));
}

Deno.test("Barrier: 4 workers run 2000 generations; nobody passes early, one leader each", async () => {
  const generations = 2000 * STRESS;
  const barrier = new Barrier(4);
  const jobs = generationJobs(barrier, 4, generations);
  const reports = await runJobs(jobs);
  for (const report of reports) assert.equal(report.detail, "");
  const counters = new Int32Array(jobs[0].counters);
  assert.equal(counters[0], 4 * generations);
  for (let gen = 0; gen < generations; gen++) {
    assert.equal(counters[1 + gen], 1, `generation ${gen} had ${counters[1 + gen]} leaders`);
  }
  assert.equal(barrier.generation, generations);
});

Deno.test("Barrier stress: 8 workers on 2 cores, 300 generations", async () => {
  const generations = 300 * STRESS;
  const barrier = new Barrier(8);
  const jobs = generationJobs(barrier, 8, generations);
  const reports = await runJobs(jobs);
  for (const report of reports) assert.equal(report.detail, "");
  assert.equal(new Int32Array(jobs[0].counters)[0], 8 * generations);
  assert.equal(barrier.generation, generations);
});

Deno.test("Barrier: the main thread takes part with waitAsync while workers block", async () => {
  const barrier = new Barrier(3);
  const counters = new SharedArrayBuffer(4);
  const jobs: BarrierJob[] = [0, 1].map((index) => ({
    handle: barrier.handle,
    index,
    mode: "once",
    generations: 1,
    counters,
  }));
  let mainLeader: boolean | undefined;
  const reports = await runJobs(jobs, async () => {
    mainLeader = await barrier.waitAsync(60_000);
  });
  const leaders = reports.filter((r) => r.detail === "leader").length + (mainLeader ? 1 : 0);
  assert.equal(leaders, 1);
  assert.equal(barrier.generation, 1);
});

Deno.test("Barrier: wait times out, withdraws, and the barrier still needs every party", async () => {
  const barrier = new Barrier(2);
  assert.throws(() => barrier.wait(20), (e: unknown) => {
    assert.ok(e instanceof TimeoutError);
    assert.equal(e.timeoutMs, 20);
    assert.match(e.message, /Barrier\.wait.*20 ms/);
    return true;
  });
  await assert.rejects(barrier.waitAsync(0), TimeoutError);
  await assert.rejects(barrier.waitAsync(30), TimeoutError);
  assert.equal(barrier.generation, 0);
  // Had an arrival stayed counted, this single party would complete a generation.
  assert.throws(() => barrier.wait(5), TimeoutError);
  // Both parties arrive: exactly one generation completes.
  const [a, b] = await Promise.all([barrier.waitAsync(60_000), barrier.waitAsync(60_000)]);
  assert.equal(Number(a) + Number(b), 1);
  assert.equal(barrier.generation, 1);
});

Deno.test("Barrier: a worker's wait with a timeout gives up when a party never comes", async () => {
  const barrier = new Barrier(2);
  const [report] = await runJobs([{
    handle: barrier.handle,
    index: 0,
    mode: "once",
    generations: 1,
    counters: new SharedArrayBuffer(4),
    timeoutMs: 50,
  }]);
  assert.equal(report.ok, false);
  assert.match(report.detail, /^TimeoutError: .*50 ms/);
  assert.equal(barrier.generation, 0);
  // The worker withdrew: two fresh parties complete the next generation.
  await Promise.all([barrier.waitAsync(60_000), barrier.waitAsync(60_000)]);
  assert.equal(barrier.generation, 1);
});

Deno.test("Barrier: break() wakes a parked worker with BrokenBarrierError", async () => {
  const barrier = new Barrier(2);
  const reports = await runJobs([{
    handle: barrier.handle,
    index: 0,
    mode: "once",
    generations: 1,
    counters: new SharedArrayBuffer(4),
  }], async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    barrier.break();
  });
  assert.equal(reports[0].ok, false);
  assert.match(reports[0].detail, /^BrokenBarrierError: .*broken/);
  assert.equal(barrier.broken, true);
  assert.throws(() => barrier.wait(), BrokenBarrierError);
  await assert.rejects(barrier.waitAsync(), BrokenBarrierError);
});

Deno.test("Barrier: a completed generation is not undone by a later break()", async () => {
  const barrier = new Barrier(2);
  const first = barrier.waitAsync();
  const second = barrier.waitAsync();
  assert.equal(barrier.generation, 1); // the second arrival completed it
  barrier.break();
  // The first party's generation completed before the break, so it succeeds.
  assert.equal(await first, false);
  assert.equal(await second, true);
});

Deno.test("Barrier: attach() rejects handles that are not barriers", () => {
  const good = new Barrier(2).handle;
  const cases: Array<[unknown, RegExp]> = [
    [null, /not an object/],
    [{ ...good, kind: "sabre.Mutex" }, /kind is not "sabre.testing.Barrier"/],
    [{ ...good, version: 2 }, /version is not 1/],
    [{ ...good, sab: new ArrayBuffer(64) }, /not a SharedArrayBuffer/],
    [{ ...good, offset: 3 }, /multiple of 4/],
    [{ ...good, offset: 64 }, /leaves no room/],
    [{ ...good, sab: new SharedArrayBuffer(64) }, /bad magic number/],
  ];
  for (const [handle, message] of cases) {
    assert.throws(() => Barrier.attach(handle as never), (e: unknown) => {
      assert.ok(e instanceof HandleError, `expected HandleError, got ${e}`);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.equal(Barrier.attach(structuredClone(good)).parties, 2);
});

Deno.test("Barrier: bad arguments throw RangeError naming the value", () => {
  assert.throws(
    () => new Barrier(0),
    /'parties' must be an integer from 1 to 65535: current value is 0/,
  );
  assert.throws(() => new Barrier(1.5), RangeError);
  assert.throws(() => new Barrier(70_000), RangeError);
  const barrier = new Barrier(1);
  assert.throws(
    () => barrier.wait(-1),
    /'timeoutMs' must be a non-negative number: current value is -1/,
  );
  assert.throws(() => barrier.wait(NaN), RangeError);
  assert.equal(barrier.generation, 0, "a rejected call must not arrive");
});
