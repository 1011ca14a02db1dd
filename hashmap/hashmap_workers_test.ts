/**
 * Multi-worker tests of HashMap: linearizability of small histories (also
 * across resizes), counters and iteration while tables are replaced, memory
 * under churn, workers dying at crash points, oversubscription, and workers
 * whose views of the heap predate its growth.
 *
 * Worker bodies live in _hashmap_test_workers.ts.
 */

import assert from "node:assert/strict";
import { HashMap } from "./mod.ts";
import { SharedHeap } from "../memory/mod.ts";
import { Mutex } from "../latch/mod.ts";
import { runWorkers, spawnWorkers } from "../testing/harness.ts";
import { HistoryClock, mergeHistories, type OpRecord } from "../testing/history.ts";
import { checkLinearizable, firstArgKey, mapModel } from "../testing/linearizability.ts";
import { createRetireAudit, doubleRetires } from "../testing/retire_audit.ts";
import {
  type AuditedResizesArgs,
  chainKey,
  type ChurnArgs,
  type ChurnBesideReaderArgs,
  type ChurnReport,
  type CountersArgs,
  type FullHeapCyclesArgs,
  type HandOffArgs,
  type InsertUntilDeathArgs,
  type IterationArgs,
  type IteratorReport,
  type LinearizableArgs,
  longValueOf,
  type MixedArgs,
  ownedKey,
  type OwnedKeysArgs,
  type PauseInRetirementArgs,
  type PinnedReaderReport,
  type ReaderReport,
  type ReadThenBlockArgs,
  replacedKey,
  replacedKeyIndex,
  replacedNumberKey,
  type ReplacedNumbersArgs,
  type ReplacedValuesArgs,
  type StaleViewArgs,
  type VerifyArgs,
  verifyArgsAfter,
  type WriterReport,
} from "./_hashmap_test_workers.ts";
import { heapKernel } from "../memory/_heap_hooks.ts";

const fixtures = new URL("./_hashmap_test_workers.ts", import.meta.url).href;
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");
const MiB = 1 << 20;

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
}

// ---------------------------------------------------------------------------
// Linearizability

interface LinearizabilityRun {
  workers: number;
  rounds: number;
  opsPerRound: number;
  keys: number;
  stringKeys: boolean;
  noise: number;
  /** Untracked keys each map holds before its round starts. */
  prefill?: number;
  /** String values of over 64 bytes, which deletes shed (see linearizableRounds). */
  longValues?: boolean;
}

/** Rounds per spawn: each spawn has its own heap, which holds that many maps. */
const ROUNDS_PER_SPAWN = 350;

/**
 * Runs `rounds` histories, many per spawn (a fresh map per round), and
 * checks each, partitioned by key, against the sequential map model.
 * Returns the maps' final capacities.
 */
async function checkHistories(run: LinearizabilityRun): Promise<number[]> {
  const capacities: number[] = [];
  for (let first = 0; first < run.rounds; first += ROUNDS_PER_SPAWN) {
    const rounds = Math.min(ROUNDS_PER_SPAWN, run.rounds - first);
    const heap = SharedHeap.create({ maxBytes: 256 * MiB });
    const maps = Array.from(
      { length: rounds },
      () =>
        HashMap.create(heap, {
          key: run.stringKeys ? "string" : "i32",
          value: run.longValues ? "string" : "i32",
        }),
    ) as unknown as HashMap<unknown, unknown>[];
    for (const map of maps) {
      for (let i = 0; i < (run.prefill ?? 0); i++) {
        map.set(run.stringKeys ? `prefill ${i}` : -1 - i, run.longValues ? longValueOf(i) : i);
      }
    }
    const clock = HistoryClock.create();
    const group = spawnWorkers<LinearizableArgs, OpRecord[][]>({
      module: fixtures,
      fn: "linearizableRounds",
      workers: run.workers,
      heap,
      args: {
        maps: maps.map((map) => map.handle),
        clock: clock.handle,
        opsPerRound: run.opsPerRound,
        keys: run.keys,
        stringKeys: run.stringKeys,
        noise: run.noise,
        longValues: run.longValues,
      },
      timeoutMs: 240_000,
    });
    let perWorker: OpRecord[][][];
    try {
      perWorker = await group.results;
    } finally {
      await group.terminateAll();
    }
    const model = mapModel();
    for (let round = 0; round < rounds; round++) {
      const history = mergeHistories(perWorker.map((histories) => histories[round]));
      assert.equal(history.length, run.workers * run.opsPerRound);
      const result = checkLinearizable(history, model, {
        partition: firstArgKey,
        timeoutMs: 20_000,
      });
      if (result.ok !== true) {
        assert.fail(
          `round ${first + round} of ${run.rounds} (seed ${group.seed}):\n${result.reason}`,
        );
      }
    }
    for (const map of maps) capacities.push(map.capacity);
  }
  return capacities;
}

Deno.test(`linearizable: 4 workers, 3 keys, 12 operations each, ${350 * STRESS} histories`, async () => {
  await checkHistories({
    workers: 4,
    rounds: 350 * STRESS,
    opsPerRound: 12,
    keys: 3,
    stringKeys: false,
    noise: 0,
  });
});

Deno.test(`linearizable: 3 workers, 2 keys, 16 operations each, ${200 * STRESS} histories`, async () => {
  await checkHistories({
    workers: 3,
    rounds: 200 * STRESS,
    opsPerRound: 16,
    keys: 2,
    stringKeys: false,
    noise: 0,
  });
});

Deno.test(`linearizable: string keys while tables grow and migrate mid-history, ${300 * STRESS} histories`, async () => {
  const capacities = await checkHistories({
    workers: 3,
    rounds: 300 * STRESS,
    opsPerRound: 12,
    keys: 3,
    stringKeys: true,
    noise: 40,
    // Just under 3/4 of a 4096-slot table: the workers' first few
    // untracked inserts start a resize whose 16 chunks take the helping of
    // about 8 writes, so the migration spans several tracked operations.
    prefill: 3066,
  });
  assert.ok(Math.min(...capacities) >= 8192, `smallest final table ${Math.min(...capacities)}`);
});

Deno.test(`linearizable: string values over 64 bytes, which deletes shed, 4 workers, 3 keys, ${200 * STRESS} histories`, async () => {
  await checkHistories({
    workers: 4,
    rounds: 200 * STRESS,
    opsPerRound: 12,
    keys: 3,
    stringKeys: true,
    noise: 40,
    longValues: true,
  });
});

Deno.test(`linearizable: 8 workers on 2 cores, 4 keys, 6 operations each, ${150 * STRESS} histories`, async () => {
  await checkHistories({
    workers: 8,
    rounds: 150 * STRESS,
    opsPerRound: 6,
    keys: 4,
    stringKeys: false,
    noise: 40,
  });
});

// ---------------------------------------------------------------------------
// Counters while tables are replaced

Deno.test("resize under load: counters never go down, ordered chains stay ordered, totals add up", async () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, { key: "i32", value: "i32" });
  const writers = 3;
  const args: CountersArgs = {
    map: map.handle,
    writers,
    counters: 3000,
    steps: 1500 * STRESS,
    chain: 8,
    flags: new SharedArrayBuffer(8),
  };
  const results = await runWorkers<CountersArgs, WriterReport | ReaderReport>({
    module: fixtures,
    fn: "counters",
    workers: writers + 2,
    heap,
    args,
    timeoutMs: 240_000,
  });
  let touched = 0;
  for (let k = 0; k < args.counters; k++) {
    let total = 0;
    for (let w = 0; w < writers; w++) total += (results[w] as WriterReport).increments[k];
    assert.equal(map.get(k) ?? 0, total, `counter ${k}`);
    if (total > 0) touched++;
  }
  for (let w = 0; w < writers; w++) {
    for (let j = 0; j < args.chain; j++) {
      assert.equal(map.get(chainKey(w, args.chain, j)), args.steps, `chain ${w}.${j}`);
    }
  }
  assert.equal(map.size, touched + writers * args.chain);
  assert.ok(map.capacity >= 4096, `capacity ${map.capacity}: the table did not grow`);
  const readers = results.slice(writers) as ReaderReport[];
  for (const reader of readers) assert.ok(reader.passes >= 1, "a reader made no pass");
  const across = readers.reduce((sum, r) => sum + r.passesAcrossResize, 0);
  assert.ok(across >= 1, "no reader pass overlapped a resize");
});

Deno.test("replaced values: string values read in the kernel while writers replace them are whole and never go back", async () => {
  const heap = SharedHeap.create();
  const map = HashMap.create(heap, { key: "string", value: "string" });
  assert.ok(heapKernel(heap) !== null, "the kernel path is what this test is for");
  const writers = 2;
  const args: ReplacedValuesArgs = {
    map: map.handle,
    writers,
    keysPerWriter: 50,
    steps: 30_000 * STRESS,
    flags: new SharedArrayBuffer(4),
  };
  const results = await runWorkers<ReplacedValuesArgs, number>({
    module: fixtures,
    fn: "readReplacedValues",
    workers: writers + 2,
    heap,
    args,
    timeoutMs: 240_000,
  });
  for (const reads of results.slice(writers)) assert.ok(reads > 0, "a reader read nothing");
  assert.equal(map.size, writers * args.keysPerWriter);
  for (let w = 0; w < writers; w++) {
    for (let j = 0; j < args.keysPerWriter; j++) {
      const key = replacedKey(w, j);
      assert.ok(map.get(key)?.startsWith(`${key}=`), key);
    }
  }
});

for (const stringKeys of [false, true]) {
  Deno.test(`replaced values: i32 values of ${stringKeys ? "string" : "i32"} keys, read in the kernel while writers replace them and their blocks are reused, name their key and never go back`, async () => {
    const heap = SharedHeap.create();
    const map = HashMap.create(heap, { key: stringKeys ? "string" : "i32", value: "i32" });
    assert.ok(heapKernel(heap) !== null, "the kernel path is what this test is for");
    const writers = 2;
    const args: ReplacedNumbersArgs = {
      map: map.handle,
      writers,
      keysPerWriter: 50,
      steps: 60_000 * STRESS,
      flags: new SharedArrayBuffer(4),
      stringKeys,
    };
    const results = await runWorkers<ReplacedNumbersArgs, number>({
      module: fixtures,
      fn: "readReplacedNumbers",
      workers: writers + 2,
      heap,
      args,
      timeoutMs: 240_000,
    });
    for (const reads of results.slice(writers)) assert.ok(reads > 0, "a reader read nothing");
    assert.equal(map.size, writers * args.keysPerWriter);
    for (let w = 0; w < writers; w++) {
      for (let j = 0; j < args.keysPerWriter; j++) {
        assert.equal(replacedKeyIndex(map.get(replacedNumberKey(w, j, stringKeys)) ?? -1), j);
      }
    }
  });
}

// ---------------------------------------------------------------------------
// Iteration

for (const pauseEvery of [0, 16]) {
  const pausing = pauseEvery === 0 ? "" : ", pausing between steps";
  Deno.test(`iteration: stable keys are seen exactly once per pass while others insert, delete and resize${pausing}`, async () => {
    const heap = SharedHeap.create();
    const map = HashMap.create(heap, { key: "string", value: "u32" });
    // Few enough stable keys that every burst of churn grows the table and
    // deleting it again shrinks it: passes overlap table replacements often.
    const stable = 400;
    for (let i = 0; i < stable; i++) map.set(`stable ${i}`, i);
    const iterators = 2;
    const results = await runWorkers<IterationArgs, IteratorReport | number>({
      module: fixtures,
      fn: "iterateWhileChanging",
      workers: iterators + 2,
      heap,
      args: {
        map: map.handle,
        stable,
        iterators,
        rounds: 30 * STRESS,
        flags: new SharedArrayBuffer(8),
        pauseEvery,
      },
      timeoutMs: 240_000,
    });
    const reports = results.slice(0, iterators) as IteratorReport[];
    for (const report of reports) assert.ok(report.passes >= 2);
    if (pauseEvery === 0) {
      const across = reports.reduce((sum, r) => sum + r.passesAcrossResize, 0);
      assert.ok(across >= 1, "no iteration overlapped a resize");
    } else {
      // Resumed after a pause in which the table was replaced: the step
      // starts over on the new table and skips what it has seen.
      const paused = reports.reduce((sum, r) => sum + r.pausesAcrossResize, 0);
      assert.ok(paused >= 1, "no iteration resumed after a resize");
    }
    assert.equal(map.size, stable);
    for (let i = 0; i < stable; i++) assert.ok(map.has(`stable ${i}`));
  });
}

// ---------------------------------------------------------------------------
// Memory

Deno.test("memory: set/delete churn on 10k keys keeps the heap and its live blocks bounded", async () => {
  const heap = SharedHeap.create({ maxBytes: 256 * MiB });
  const map = HashMap.create(heap, { key: "u32", value: "string" });
  // SABRE_CHURN_WORKERS shows how descheduled pinned workers weigh (10k keys in all).
  const workers = Number(Deno.env.get("SABRE_CHURN_WORKERS") ?? "4");
  const keysPerWorker = Math.floor(10_000 / workers);
  const valueBytes = 40;
  const reports = await runWorkers<ChurnArgs, ChurnReport>({
    module: fixtures,
    fn: "churn",
    workers,
    heap,
    // 2M set/delete cycles (4M operations) at STRESS=1, shared among the workers.
    args: {
      map: map.handle,
      keysPerWorker,
      ops: Math.floor((4_000_000 * STRESS) / workers),
      valueBytes,
    },
    timeoutMs: 600_000,
  });
  assert.equal(map.size, 0);
  // Live data at most: one entry per key (live or deleted, 64-byte blocks
  // here) and the largest table the keys need (16 Ki slots). Replaced
  // entries wait for the epoch to move on, which it cannot while a pinned
  // worker is preempted (4 workers on 2 cores): for a time slice, retired
  // blocks pile up, the more so the more workers wait for a core. The
  // bounds allow for that (in proportion to the workers), not for a leak,
  // which would hold on the order of a block per cycle (millions).
  const keys = workers * keysPerWorker;
  const liveData = keys * 64 + 16_384 * 4;
  const heapBytes = Math.max(heap.stats().heapBytes, ...reports.map((r) => r.maxHeapBytes));
  const maxLiveBlocks = Math.max(...reports.map((r) => r.maxLiveBlocks));
  // The figures, for long runs: SABRE_STRESS=50 runs 100M cycles.
  console.log(
    `${2 * STRESS}M set/delete cycles, ${workers} workers: heap peaked at ${heapBytes} B, ` +
      `${(heapBytes / liveData).toFixed(1)}x the live data bound (${liveData} B); ` +
      `${(maxLiveBlocks / keys).toFixed(2)} live blocks per key at most`,
  );
  assert.ok(
    heapBytes <= 6 * workers * liveData,
    `heap grew to ${heapBytes} bytes for ${liveData} of data`,
  );
  assert.ok(maxLiveBlocks <= 5 * workers * keys, `${maxLiveBlocks} live blocks for ${keys} keys`);
  // Deleted entries keep their slots (and memory) until the table is
  // rehashed, which a run of deletes on a sparse table starts: do one, let
  // writes finish it and the epochs move on. What is left: the entries of
  // the slots claimed in the last table (at most 3/4 of it) and the table.
  for (let i = 0; i < 300; i++) map.set(4_000_000_000 + i, "x");
  for (let i = 0; i < 300; i++) map.delete(4_000_000_000 + i);
  for (let i = 0; i < 64; i++) map.delete(4_000_000_000 + i);
  for (let i = 0; i < 4; i++) heap.collect();
  const stats = heap.stats();
  assert.equal(stats.retiredBlocks, 0);
  assert.ok(map.capacity <= 256, `capacity ${map.capacity} for an empty map`);
  const bound = (map.capacity * 3) / 4 + 8;
  assert.ok(stats.liveBlocks <= bound, `${stats.liveBlocks} blocks still live in an empty map`);
});

Deno.test("size: never negative while some workers add the keys that others delete", async () => {
  const heap = SharedHeap.create({ maxBytes: 64 * MiB });
  const map = HashMap.create(heap, { key: "u32", value: "u32" });
  const workers = 2;
  const keys = 1000;
  const flags = new Int32Array(new SharedArrayBuffer(12));
  const run = runWorkers<HandOffArgs, number>({
    module: fixtures,
    fn: "handOff",
    workers,
    heap,
    args: { map: map.handle, keys, flags: flags.buffer as SharedArrayBuffer },
    timeoutMs: 240_000,
  });
  // Read on this thread while they run, with more threads than cores: each
  // read sums the stripes one after another, and a read descheduled between
  // the adder's stripe and the deleter's sees the deletes of keys whose adds
  // it missed, which without the clamp comes out below zero.
  let lowest = Infinity;
  let reads = 0;
  try {
    await until(() => Atomics.load(flags, 0) === workers);
    const end = performance.now() + 1500 * STRESS;
    while (performance.now() < end) {
      for (let i = 0; i < 1000; i++) {
        const size = map.size;
        if (size < lowest) lowest = size;
      }
      reads += 1000;
    }
  } finally {
    Atomics.store(flags, 2, 1);
  }
  const ops = await run;
  assert.ok(lowest >= 0, `size read ${lowest}`);
  assert.ok(reads > 0 && ops.every((n) => n > 0));
  assert.equal(map.size, [...map.keys()].length);
});

// ---------------------------------------------------------------------------
// Retirement

for (const workers of [4, 8]) {
  Deno.test(`retirement: ${workers} workers growing and shrinking the map retire every entry once`, async () => {
    const heap = SharedHeap.create({ maxBytes: 256 * MiB });
    const map = HashMap.create(heap, { key: "i32", value: "i32" });
    const audit = createRetireAudit(heap);
    const keysPerWorker = Math.floor(40_000 / workers);
    await runWorkers<AuditedResizesArgs, number>({
      module: fixtures,
      fn: "auditedResizes",
      workers,
      heap,
      args: { map: map.handle, audit, keysPerWorker, rounds: 6 * STRESS },
      timeoutMs: 240_000,
    });
    const { count, pointer } = doubleRetires(audit);
    assert.equal(count, 0, `${count} blocks retired twice, the last at ${pointer}`);
    assert.ok(map.size <= 8 * workers, `${map.size} keys left`);
    // And none leaked: empty the map, let a shrink and its retirement run,
    // and what is left is the last table and at most its claimed entries.
    map.clear();
    for (let i = 0; i < 300; i++) map.set(1_000_000 + i, i);
    for (let i = 0; i < 300; i++) map.delete(1_000_000 + i);
    for (let i = 0; i < 64; i++) map.delete(1_000_000 + i);
    for (let i = 0; i < 4; i++) heap.collect();
    const stats = heap.stats();
    assert.equal(stats.retiredBlocks, 0);
    const bound = (map.capacity * 3) / 4 + 8;
    assert.ok(
      stats.liveBlocks <= bound,
      `${stats.liveBlocks} blocks live in an empty map (${map.capacity} slots)`,
    );
  });
}

Deno.test("full heap: 4 workers emptying and refilling a map on a heap their own blocks fill rebuild its tables through the spare, retire every block once and leak none", async () => {
  const heap = SharedHeap.create({ initialBytes: 2 * MiB, maxBytes: 2 * MiB });
  const settledBlocks = () => {
    for (let i = 0; i < 4; i++) heap.collect();
    return heap.stats().liveBlocks;
  };
  const audit = createRetireAudit(heap);
  const before = settledBlocks();
  const map = HashMap.create(heap, { key: "i32", value: "i32" });
  const workers = 4;
  const rounds = 300 * STRESS;
  const inserted = await runWorkers<FullHeapCyclesArgs, number>({
    module: fixtures,
    fn: "fullHeapCycles",
    workers,
    heap,
    args: {
      map: map.handle,
      audit,
      flags: new SharedArrayBuffer(4),
      workers,
      keysPerWorker: 2,
      rounds,
    },
    timeoutMs: 240_000,
  });
  const total = inserted.reduce((a, b) => a + b, 0);
  // A round may find the heap full while others hold blocks back: 1,574 to
  // 1,971 of the 2,400 keys went in over six runs on 2 cores, none before
  // the spare.
  assert.ok(
    total >= (rounds * workers) / 2,
    `${total} keys inserted in ${rounds} rounds (${inserted})`,
  );
  const { count, pointer } = doubleRetires(audit);
  assert.equal(count, 0, `${count} blocks retired twice, the last at ${pointer}`);
  assert.equal(map.size, 0);
  assert.deepEqual([...map.keys()], []);
  map.destroy();
  assert.equal(settledBlocks(), before);
});

Deno.test("retirement: a chunk whose holder is slow, not gone, is waited for; the root moves on after", async () => {
  const heap = SharedHeap.create({ maxBytes: 256 * MiB });
  const map = HashMap.create(heap, { key: "i32", value: "i32" });
  const flags = new SharedArrayBuffer(8);
  const words = new Int32Array(flags);
  const group = spawnWorkers<PauseInRetirementArgs, number>({
    module: fixtures,
    fn: "pauseInRetirement",
    workers: 1,
    heap,
    args: { map: map.handle, flags },
    timeoutMs: 120_000,
  });
  try {
    await until(() => Atomics.load(words, 0) === 1);
    // The worker holds a retirement chunk, stopped inside one slot. Write
    // enough to fill the root and migrate it: the root may not move on
    // while the old table's retirement is unfinished, and nobody may finish
    // it for a holder that is still there.
    const stuckAt = map.capacity;
    for (let k = 0; k < 8 * stuckAt; k++) map.set(1_000_000 + k, k);
    assert.equal(map.capacity, stuckAt, "the root moved on past an unfinished retirement");
    // finishResize does every chunk but the held one, and does not wait.
    assert.equal(map.finishResize(), false, "finishResize ended a retirement a holder is in");
    assert.equal(map.capacity, stuckAt, "finishResize moved the root past the retirement");
    Atomics.store(words, 1, 1);
    Atomics.notify(words, 1);
    const [inserted] = await group.results;
    // The holder's own write ended its chunk, and so the retirement; the
    // migration that waited for it needs no further write.
    assert.equal(map.finishResize(), true);
    assert.ok(map.capacity > stuckAt, `the root stayed at ${stuckAt} slots`);
    for (let k = 0; k < 100; k++) map.set(2_000_000 + k, k);
    for (let k = 0; k < inserted; k++) assert.equal(map.get(k), k);
    for (let k = 0; k < 8 * stuckAt; k++) assert.equal(map.get(1_000_000 + k), k);
  } finally {
    await group.terminateAll();
  }
});

for (const site of ["hashmap.migrate.chunk", "hashmap.retire.chunk"]) {
  Deno.test(`termination: finishResize alone completes the resize a worker died in at ${site}`, async () => {
    const heap = SharedHeap.create({ maxBytes: 64 * MiB });
    const empty = heap.stats().liveBytes;
    const map = HashMap.create(heap, { key: "i32", value: "i32", capacity: 4096 });
    let reached = -1;
    const group = spawnWorkers<InsertUntilDeathArgs, number>({
      module: fixtures,
      fn: "insertUntilDeath",
      workers: 1,
      heap,
      args: { map: map.handle, site },
      timeoutMs: 60_000,
    });
    group.onMessage((_, value) => {
      reached = value as number;
      group.terminate(0); // evicts its heap slot
    });
    try {
      await group.results;
    } finally {
      await group.terminateAll();
    }
    assert.ok(reached > 0, "the worker did not reach the crash point");
    // Keys 0 .. reached-1 are in; key `reached` was in flight.
    const inFlight = map.get(reached);
    assert.ok(inFlight === undefined || inFlight === reached, `get(${reached}) = ${inFlight}`);
    const size = reached + (inFlight === undefined ? 0 : 1);
    assert.equal(map.size, size);
    for (let i = 0; i < 4; i++) heap.collect();
    const stuck = heap.stats().liveBytes - empty;
    // No write follows: the chunk the dead worker held is taken over.
    assert.equal(map.finishResize(), true);
    for (let i = 0; i < 4; i++) heap.collect();
    const settled = heap.stats().liveBytes - empty;
    assert.ok(
      stuck - settled >= 4 * 4096,
      `${stuck - settled} bytes reclaimed: the old 4,096-slot table was not`,
    );
    assert.equal(map.capacity, 8192);
    for (let k = 0; k < reached; k++) assert.equal(map.get(k), k, `get(${k})`);
    assert.equal(map.size, size);
    for (let k = 0; k < 100; k++) map.set(-1 - k, k);
    assert.equal(map.size, size + 100);
  });
}

// ---------------------------------------------------------------------------
// Termination

const CRASH_SITES: {
  site: string;
  after: number;
  /** Whether the root must move on after the death (undefined: no resize involved). */
  rootMoves: true | undefined;
  opsBefore?: number;
}[] = [
  { site: "hashmap.resize.publish", after: 2, rootMoves: true },
  { site: "hashmap.migrate.chunk", after: 3, rootMoves: true },
  // The promotion lock holds the dead worker's ownerId: once it is evicted,
  // the next writer takes the lock over and the root moves on.
  { site: "hashmap.promote", after: 2, rootMoves: true },
  // A retirement chunk left half done passes to the next writer once its
  // holder is evicted; the root moves on after that.
  { site: "hashmap.retire.chunk", after: 2, rootMoves: true },
  // A holder that dies between marking its chunk done and counting it
  // leaves the count short; the next writer that finds every chunk done
  // counts for it.
  { site: "hashmap.migrate.count", after: 3, rootMoves: true },
  { site: "hashmap.retire.count", after: 3, rootMoves: true },
  // And one that dies after counting the last chunk, before it finishes the
  // retirement: the next writer that finds the job complete finishes it.
  { site: "hashmap.retire.finish", after: 2, rootMoves: true },
  { site: "heap.page.take", after: 6, rootMoves: undefined },
  { site: "pool.split", after: 3, rootMoves: undefined },
  // The first growth must be the doomed worker's own: the others wait for it
  // (opsBefore 0) instead of racing it to every growth the map needs.
  { site: "pool.grow", after: 1, rootMoves: undefined, opsBefore: 0 },
  // The doomed worker alone frees blocks of another slot for sure: the
  // first tables, which this thread allocated when it created the map.
  { site: "heap.remote.push", after: 2, rootMoves: undefined, opsBefore: 0 },
];

for (const { site, after, rootMoves, opsBefore = 3000 } of CRASH_SITES) {
  Deno.test(`termination: a worker dying at ${site} inside a map write leaves the map whole`, async () => {
    const heap = SharedHeap.create({ initialBytes: 4 * 65536, maxBytes: 256 * MiB });
    const map = HashMap.create(heap, { key: "i32", value: "i32" });
    const workers = 3;
    // Room for the doomed worker to keep inserting new keys (growing tables
    // and the heap) until it reaches its crash point.
    const perWorker = 60_000;
    const args: OwnedKeysArgs = {
      map: map.handle,
      perWorker,
      state: new SharedArrayBuffer(workers * perWorker * 8),
      pending: new SharedArrayBuffer(workers * 16),
      flags: new SharedArrayBuffer(8),
      opsBefore,
      opsAfter: 15_000 * STRESS,
      dieAt: { site, after },
    };
    const registered = heap.stats().workers; // this thread, which created the map
    const group = spawnWorkers<OwnedKeysArgs, number>({
      module: fixtures,
      fn: "ownedKeys",
      workers,
      heap,
      args,
      timeoutMs: 240_000,
    });
    group.onMessage((index, value) => {
      if (index === 0 && value === "dying") group.terminate(0); // evicts its heap slot
    });
    let results: number[];
    try {
      results = await group.results;
    } finally {
      await group.terminateAll();
    }
    assert.equal(results[0], undefined, "worker 0 should have died");
    for (let w = 1; w < workers; w++) {
      assert.equal(results[w], opsBefore + args.opsAfter, `worker ${w}`);
    }
    assert.equal(heap.stats().workers, registered, "a slot was left behind");
    // A newcomer finds every key as its owner left it, then rewrites them
    // and inserts enough new ones to need bigger tables.
    const rootCapacity = map.capacity;
    const grow = 3 * rootCapacity;
    const [size] = await runWorkers<VerifyArgs, number>({
      module: fixtures,
      fn: "verifyAndRewrite",
      workers: 1,
      heap,
      args: verifyArgsAfter(args, workers, grow),
      timeoutMs: 240_000,
    });
    assert.equal(map.size, size);
    assert.ok(size >= grow);
    if (rootMoves) {
      assert.ok(map.capacity > rootCapacity, `the root table stayed at ${rootCapacity} slots`);
    }
    // And the main thread, another newcomer, reads and writes too.
    for (let j = 0; j < 100; j++) {
      map.set(ownedKey(workers * perWorker + grow + j), j);
      assert.equal(map.get(ownedKey(workers * perWorker + grow + j)), j);
    }
  });
}

// ---------------------------------------------------------------------------
// Oversubscription

Deno.test("oversubscription: 8 workers on 2 cores with mixed operations finish, counters add up, destroy gives back every block", async () => {
  const heap = SharedHeap.create();
  const settledBlocks = () => {
    for (let i = 0; i < 4; i++) heap.collect();
    return heap.stats().liveBlocks;
  };
  const before = settledBlocks();
  const map = HashMap.create(heap, { key: "i32", value: "i32" });
  const args: MixedArgs = { map: map.handle, ops: 20_000 * STRESS, owned: 400, counters: 64 };
  const results = await runWorkers<MixedArgs, number[]>({
    module: fixtures,
    fn: "mixed",
    workers: 8,
    heap,
    args,
    timeoutMs: 240_000,
  });
  for (let k = 0; k < args.counters; k++) {
    const total = results.reduce((sum, increments) => sum + increments[k], 0);
    assert.equal(map.get(k) ?? 0, total, `counter ${k}`);
  }
  // The workers closed their heaps: what they retired waits in orphan bags
  // that this worker's collections adopt. The map's tables are in whatever
  // state the workers left them.
  map.destroy();
  assert.equal(settledBlocks(), before);
});

// ---------------------------------------------------------------------------
// Read pins

Deno.test("read pins: a worker reading in one long task while others churn moves its read pin along, and the heap stays bounded", async () => {
  const heap = SharedHeap.create({ maxBytes: 256 * MiB });
  assert.ok(heapKernel(heap) !== null, "this test needs the kernel");
  const map = HashMap.create(heap, { key: "u32", value: "string" });
  const readMap = HashMap.create(heap, { key: "i32", value: "i32" });
  const readKeys = 1000;
  for (let k = 0; k < readKeys; k++) readMap.set(k, ~k);
  // One reader and two writers (three workers on two cores).
  const writers = 2;
  const keysPerWorker = 2_500;
  const results = await runWorkers<ChurnBesideReaderArgs, ChurnReport | PinnedReaderReport>({
    module: fixtures,
    fn: "churnBesideReader",
    workers: writers + 1,
    heap,
    args: {
      map: map.handle,
      keysPerWorker,
      ops: Math.floor(400_000 * STRESS),
      valueBytes: 40,
      readMap: readMap.handle,
      readKeys,
      flags: new SharedArrayBuffer(4),
    },
    timeoutMs: 300_000,
  });
  const reader = results[0] as PinnedReaderReport;
  assert.ok(reader.gets > 0 && reader.pinnedSamples > 0, JSON.stringify(reader));
  // The reader never ended a task: had its read pin stayed at the epoch of
  // its first get, the epoch could have moved once, and every entry the
  // writers replaced after that would still be live (hundreds of
  // thousands). The bound is the churn test's, for the writers' keys.
  const keys = writers * keysPerWorker;
  const maxLiveBlocks = Math.max(...results.slice(1).map((r) => (r as ChurnReport).maxLiveBlocks));
  assert.ok(
    maxLiveBlocks <= 5 * (writers + 1) * (keys + readKeys),
    `${maxLiveBlocks} live blocks for ${keys + readKeys} keys`,
  );
  assert.equal(map.size, 0);
});

Deno.test("read pins: a worker that blocks on a sabre lock right after a get releases its read pin first", async () => {
  const heap = SharedHeap.create();
  assert.ok(heapKernel(heap) !== null, "this test needs the kernel");
  const map = HashMap.create(heap, { key: "i32", value: "i32" });
  map.set(1, 10);
  heap.setRoot("map", map.handle);
  const mutex = Mutex.create(heap);
  const held = mutex.lock();
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const group = spawnWorkers<ReadThenBlockArgs, number>({
    module: fixtures,
    fn: "readThenBlock",
    workers: 1,
    heap,
    args: { flags: flags.buffer as SharedArrayBuffer, mutex: mutex.handle },
    timeoutMs: 60_000,
  });
  try {
    await until(() => Atomics.load(flags, 0) === 1);
    const word = Atomics.load(flags, 1);
    // Parked on the mutex, the worker must show no pin: else the epoch
    // could not move past the one after its get, and nothing retired from
    // now on could be freed until the lock is released.
    const deadline = performance.now() + 10_000;
    await until(() => Atomics.load(heap.i32, word) === 0 || performance.now() > deadline);
    assert.equal(Atomics.load(heap.i32, word), 0, "the worker blocked holding its read pin");
    const block = heap.allocate(16);
    heap.retire(block);
    let freed = 0;
    for (let i = 0; i < 4 && freed === 0; i++) freed += heap.collect();
    assert.equal(freed, 1, "a block retired while the worker was blocked was not freed");
    held.unlock();
    const [pinnedAt] = await group.results;
    assert.ok(pinnedAt > 0);
  } finally {
    await group.terminateAll();
  }
});

// ---------------------------------------------------------------------------
// Workers whose views of the heap are older than its growth

/** Spawns one worker, waits until it runs, then lets `prepare` grow the heap. */
async function withStaleWorker(
  heap: SharedHeap,
  action: StaleViewArgs["action"],
  n: number,
  prepare: () => void,
): Promise<number> {
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const group = spawnWorkers<StaleViewArgs, number>({
    module: fixtures,
    fn: "afterGrowth",
    workers: 1,
    heap,
    args: { flags: flags.buffer as SharedArrayBuffer, action, n },
    timeoutMs: 60_000,
  });
  try {
    await until(() => Atomics.load(flags, 0) === 1);
    prepare();
    Atomics.store(flags, 1, 1);
    Atomics.notify(flags, 1);
    const [mapped] = await group.results;
    assert.ok(mapped < heap.stats().heapBytes, "the worker's views were not stale");
    return mapped;
  } finally {
    await group.terminateAll();
  }
}

function growHeap(heap: SharedHeap): void {
  const bytes = heap.stats().heapBytes;
  while (heap.stats().heapBytes === bytes) heap.allocate(60_000);
}

Deno.test("stale views: a worker that joined before the heap grew uses a map created after", async () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  let map: HashMap<number, number> | undefined;
  const mapped = await withStaleWorker(heap, "read-write", 1000, () => {
    growHeap(heap);
    map = HashMap.create(heap, { key: "i32", value: "i32" });
    for (let k = 0; k < 1000; k++) map.set(k, ~k);
    heap.setRoot("map", map.handle);
  });
  assert.ok(mapped <= map!.handle.offset, "the map lay inside the worker's views");
  for (let k = 0; k < 2000; k++) assert.equal(map!.get(k), k);
});

Deno.test("stale views: a worker that has not mapped new entries helps migrate them", async () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  const map = HashMap.create(heap, { key: "i32", value: "string", capacity: 4096 });
  // The slot array of the next table (8192 slots) will reuse this block,
  // which lies inside the worker's views; the entries will all lie outside.
  heap.free(heap.allocate(8192 * 4));
  heap.setRoot("map", map.handle);
  const value = (k: number) => `value ${k} `.padEnd(1000, "-");
  const n = 3073; // one claim past 3/4 of 4096: starts a resize, helps nothing
  await withStaleWorker(heap, "delete-absent", 0, () => {
    growHeap(heap);
    for (let k = 0; k < n; k++) map.set(k, value(k));
    assert.equal(map.capacity, 4096);
  });
  // Finish the migration the worker started, then read everything.
  for (let i = 0; map.capacity === 4096; i++) {
    assert.ok(i < 100, "the migration never finished");
    map.delete(-2 - i);
  }
  for (let k = 0; k < n; k++) assert.equal(map.get(k), value(k), `get(${k})`);
  // Old entries are freed only when no table refers to them any more: reuse
  // the freed memory and look again.
  for (let i = 0; i < 4; i++) heap.collect();
  for (let k = n; k < 2 * n; k++) map.set(k, value(k));
  for (let k = 0; k < 2 * n; k++) assert.equal(map.get(k), value(k), `get(${k}) after reuse`);
});

Deno.test("stale views: a worker that has not mapped a table's slots helps migrate it", async () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  // Pages for the map's header and table blocks, inside the worker's views.
  heap.allocate(32);
  heap.free(heap.allocate(4160));
  let map: HashMap<number, number> | undefined;
  await withStaleWorker(heap, "delete-absent", 0, () => {
    growHeap(heap);
    // Its 64 KiB slot array comes from the grown part of the heap.
    map = HashMap.create(heap, { key: "i32", value: "i32", capacity: 16_384 });
    for (let k = 0; k < 12_289; k++) map.set(k, k); // starts a resize
    heap.setRoot("map", map.handle);
  });
  for (let i = 0; map!.capacity === 16_384; i++) {
    assert.ok(i < 100, "the migration never finished");
    map!.delete(-2 - i);
  }
  for (let k = 0; k < 12_289; k++) assert.equal(map!.get(k), k);
});
