import assert from "node:assert/strict";
import { runWorkers, spawnWorkers, type WorkerGroup } from "../testing/harness.ts";
import { SharedHeap, WorkerLimitError } from "./mod.ts";
import type {
  ChurnArgs,
  EpochArgs,
  HoldPinArgs,
  ReadPinParkArgs,
  RetireArgs,
} from "./_heap_test_workers.ts";
import { setCoreCount } from "./heap.ts";
import { H_POOL_LOCK } from "./_layout.ts";
import { heapKernel } from "./_heap_hooks.ts";

const fixtures = new URL("./_heap_test_workers.ts", import.meta.url).href;
const STRESS = Number(Deno.env.get("SABRE_STRESS") ?? "1");
const MiB = 1 << 20;

async function churnTest(workers: number, ops: number): Promise<void> {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 512 * MiB });
  const args: ChurnArgs = {
    ops,
    handoff: new SharedArrayBuffer(workers * workers * 8 * 3 * 4),
  };
  const results = await runWorkers<ChurnArgs, { allocations: number; remote: number }>({
    module: fixtures,
    fn: "churn",
    workers,
    heap,
    args,
    timeoutMs: 300_000,
  });
  const stats = heap.stats();
  assert.ok(stats.growCount >= 3, `heap grew only ${stats.growCount} times`);
  assert.equal(stats.liveBlocks, 0, "blocks leaked");
  assert.equal(stats.liveBytes, 0, "bytes leaked");
  assert.equal(stats.workers, 0, "workers still registered");
  // Every worker closed, so every empty page went back and merged.
  assert.equal(stats.freeBytes + stats.metadataBytes, stats.heapBytes, "pages not returned");
  assert.equal(stats.smallPageBytes + stats.largeBytes, 0);
  const remote = results.reduce((sum, r) => sum + r.remote, 0);
  assert.ok(remote > 0, "no block was freed by a foreign worker");
}

Deno.test("allocator: 4 workers x 100k mixed allocations and frees, no overlap, stats balance", async () => {
  await churnTest(4, 100_000 * STRESS);
});

Deno.test("allocator stress: 8 workers on 2 cores", async () => {
  await churnTest(8, 25_000 * STRESS);
});

Deno.test("epochs: a slow pinned reader keeps a retired block from reuse until it unpins", async () => {
  const heap = SharedHeap.create();
  const results = await runWorkers<EpochArgs, string>({
    module: fixtures,
    fn: "epochReaderWriter",
    workers: 2,
    heap,
    args: { shared: new SharedArrayBuffer(16), slowMs: 300 },
    timeoutMs: 60_000,
  });
  assert.equal(results.length, 2);
  assert.equal(heap.stats().liveBlocks, 0);
});

Deno.test("registry: maxWorkers slots, WorkerLimitError past them, reuse after close", async () => {
  const heap = SharedHeap.create({ maxWorkers: 3 });
  const flag = new Int32Array(new SharedArrayBuffer(8));
  const group = spawnWorkers<{ flag: SharedArrayBuffer }, number>({
    module: fixtures,
    fn: "holdSlot",
    workers: 3,
    heap,
    args: { flag: flag.buffer as SharedArrayBuffer },
    timeoutMs: 60_000,
  });
  try {
    while (Atomics.load(flag, 1) < 3) await new Promise((r) => setTimeout(r, 5));
    assert.equal(heap.stats().workers, 3);
    assert.throws(() => heap.join(), WorkerLimitError);
    Atomics.store(flag, 0, 1);
    const slots = await group.results;
    assert.deepEqual([...slots].sort(), [0, 1, 2]);
  } finally {
    Atomics.store(flag, 0, 1);
    await group.terminateAll();
  }
  assert.equal(heap.stats().workers, 0);
  assert.ok(heap.join() >= 0, "a slot is free again");
  heap.close();
});

Deno.test("termination: workers stopped between heap operations leave the heap usable", async () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 256 * MiB });
  for (let trial = 0; trial < 3 * STRESS; trial++) {
    const group = spawnWorkers<unknown, never>({
      module: fixtures,
      fn: "churnForever",
      workers: 3,
      heap,
      timeoutMs: 60_000,
    });
    const stopAt = 2 + trial;
    let progress = 0;
    await new Promise<void>((resolve) => {
      group.onMessage((index) => {
        if (index === 0 && ++progress === stopAt) resolve();
      });
    });
    await group.terminateAll(); // evicts their slots
    await group.done;
    // Newcomers adopt the dead workers' slots and pages, and still allocate,
    // grow and free without overlap.
    await churnIn(heap, 2, 5_000);
  }
  assert.equal(heap.stats().workers, 0);
});

/** Runs the churn workload on an existing heap and checks it completed. */
async function churnIn(heap: SharedHeap, workers: number, ops: number): Promise<void> {
  const results = await runWorkers<ChurnArgs, { allocations: number; remote: number }>({
    module: fixtures,
    fn: "churn",
    workers,
    heap,
    args: { ops, handoff: new SharedArrayBuffer(workers * workers * 8 * 3 * 4) },
    timeoutMs: 120_000,
  });
  assert.equal(results.length, workers);
}

const CRASH_SITES = [
  "pool.split",
  "pool.merge",
  "pool.grow",
  "heap.page.take",
  "heap.remote.push",
  "heap.remote.take",
];

for (const site of CRASH_SITES) {
  Deno.test(`termination: a worker dying at crash point ${site} leaves the heap usable`, async () => {
    // Start at the smallest size, so that both workers grow the heap often.
    const heap = SharedHeap.create({ initialBytes: 4 * 65536, maxBytes: 256 * MiB });
    const group = spawnWorkers<ChurnArgs, { allocations: number; remote: number }>({
      module: fixtures,
      fn: "churn",
      workers: 2,
      heap,
      args: {
        ops: 40_000,
        handoff: new SharedArrayBuffer(2 * 2 * 8 * 3 * 4),
        dieAt: { site, after: site === "pool.grow" ? 1 : 3 },
        died: new SharedArrayBuffer(4),
      },
      timeoutMs: 120_000,
    });
    group.onMessage((index, value) => {
      if (index === 0 && value === "dying") group.terminate(0); // evicts, recovers the pool
    });
    const results = await group.results;
    assert.equal(results[0], undefined, "worker 0 should have been stopped");
    assert.ok(results[1] !== undefined && results[1].allocations > 0);
    // The heap is still consistent: new workers (one adopts the dead slot)
    // allocate, grow and free, checking every block's contents.
    await churnIn(heap, 3, 10_000);
    const stats = heap.stats();
    assert.equal(stats.workers, 0);
    assert.ok(stats.freeBytes + stats.smallPageBytes + stats.largeBytes <= stats.heapBytes);
  });
}

Deno.test("termination: a worker dying while writing a root leaves roots and pool usable", async () => {
  const heap = SharedHeap.create();
  heap.setRoot("kept", { kind: "test.Kept", version: 1, sab: heap.sab, offset: 128 });
  const group = spawnWorkers<unknown, never>({
    module: fixtures,
    fn: "dieSettingRoot",
    workers: 1,
    heap,
    timeoutMs: 60_000,
  });
  group.onMessage(() => group.terminate(0));
  await group.done;
  assert.equal(heap.root("doomed"), undefined, "a half-written root must not be visible");
  assert.equal(heap.root("kept")?.offset, 128);
  heap.setRoot("after", { kind: "test.After", version: 1, sab: heap.sab, offset: 256 });
  assert.equal(heap.root("after")?.offset, 256);
  heap.free(heap.allocate(100_000)); // the pool lock was released
});

Deno.test("termination: a worker killed holding the pool lock is recovered by evictWorker", async () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  const holder = spawnWorkers<unknown, never>({
    module: fixtures,
    fn: "dieHoldingPoolLock",
    workers: 1,
    heap,
    timeoutMs: 60_000,
  });
  await new Promise<void>((resolve) => holder.onMessage(() => resolve()));
  // Two more workers now block on the pool lock.
  const blocked = runWorkers<{ count: number }, number>({
    module: fixtures,
    fn: "allocateLarge",
    workers: 2,
    heap,
    args: { count: 50 },
    timeoutMs: 60_000,
  });
  await new Promise((r) => setTimeout(r, 100));
  await holder.terminate(0); // evicts the slot: recovery releases the lock
  await holder.done;
  assert.deepEqual(await blocked, [1225, 1225]);
  assert.equal(heap.stats().liveBlocks, 0);
});

Deno.test("termination: evictWorker wakes the pool lock's waiters that a dying unlock did not", async () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  const holder = spawnWorkers<unknown, never>({
    module: fixtures,
    fn: "dieReleasingPoolLock",
    workers: 1,
    heap,
    timeoutMs: 60_000,
  });
  const messages = holder.messages();
  const said = [(await messages.next()).value?.value];
  const blocked = runWorkers<{ count: number }, number>({
    module: fixtures,
    fn: "allocateLarge",
    workers: 2,
    heap,
    args: { count: 50 },
    timeoutMs: 60_000,
  });
  said.push((await messages.next()).value?.value); // the lock is free, its waiters asleep
  assert.deepEqual(said, ["holding", "released"]);
  await holder.terminate(0); // evicts the slot: must wake them
  await holder.done;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<"stuck">((resolve) => {
    timer = setTimeout(() => resolve("stuck"), 20_000);
  });
  const outcome = await Promise.race([blocked, stuck]);
  clearTimeout(timer);
  if (outcome === "stuck") {
    Atomics.notify(heap.i32, H_POOL_LOCK); // let them finish, then fail
    await blocked;
    assert.fail("the waiters still slept 20 s after the eviction");
  }
  assert.deepEqual(outcome, [1225, 1225]);
  assert.equal(heap.stats().liveBlocks, 0);
});

Deno.test("read pins: a worker that parks on the pool lock right after a read releases its read pin first", async () => {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  if (heapKernel(heap) === null) return; // no kernel, no read pins
  const cell = heap.allocate(8);
  const word = heap.allocate(8);
  heap.f64[cell >> 3] = 42;
  Atomics.store(heap.i32, word >> 2, cell);
  const flags = new Int32Array(new SharedArrayBuffer(12));
  const args: ReadPinParkArgs = { flags: flags.buffer as SharedArrayBuffer, word };
  const reader = spawnWorkers<ReadPinParkArgs, number>({
    module: fixtures,
    fn: "readThenAllocateLarge",
    workers: 1,
    heap,
    args,
    timeoutMs: 60_000,
  });
  let holder: WorkerGroup<string> | undefined;
  try {
    while (Atomics.load(flags, 0) === 0) await new Promise((r) => setTimeout(r, 2));
    holder = spawnWorkers<ReadPinParkArgs, string>({
      module: fixtures,
      fn: "holdPoolLockUntilTold",
      workers: 1,
      heap,
      args,
      timeoutMs: 60_000,
    });
    await new Promise<void>((resolve) => holder!.onMessage(() => resolve()));
    const readerSaid = new Promise<number>((resolve) =>
      reader.onMessage((_, m) => resolve(m as number))
    );
    Atomics.store(flags, 1, 1);
    Atomics.notify(flags, 1);
    const epochWord = await readerSaid;
    // The reader sets the waiters bit just before it parks.
    while ((Atomics.load(heap.i32, H_POOL_LOCK) & 1) === 0) {
      await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(
      Atomics.load(heap.i32, epochWord),
      0,
      "the reader parked on the pool lock with its read pin",
    );
  } finally {
    Atomics.store(flags, 2, 1);
    Atomics.notify(flags, 2);
    if (holder !== undefined) assert.deepEqual(await holder.results, ["released"]);
  }
  assert.deepEqual(await reader.results, [42]);
  await reader.terminateAll();
  await holder?.terminateAll();
});

Deno.test("epochs: a worker's orphaned retired blocks are adopted past the adopter's views", async () => {
  // The smallest heap: almost every page the worker takes lies past the
  // parent's views, which were made at creation and never refreshed here.
  const heap = SharedHeap.create({ initialBytes: 4 * 65536, maxBytes: 64 * MiB });
  const mappedBefore = heap.mappedBytes;
  heap.pin(); // holds the epoch: the worker cannot free what it retires
  const [retired] = await runWorkers<{ blocks: number }, number>({
    module: fixtures,
    fn: "retireAfterGrowth",
    workers: 1,
    heap,
    args: { blocks: 300 },
    timeoutMs: 60_000,
  });
  assert.ok(retired > 0, "the worker should have left retired blocks");
  assert.equal(heap.mappedBytes, mappedBefore, "the parent's views must still be the old ones");
  assert.ok(heap.sab.byteLength > mappedBefore, "the worker should have grown the heap");
  heap.unpin();
  // Orphaned blocks count as retired, and as live until a collection adopts
  // and frees them (their bags are the heap's own and count as neither).
  assert.equal(heap.stats().retiredBlocks, retired);
  const liveBefore = heap.stats().liveBlocks;
  for (let i = 0; i < 4; i++) heap.collect();
  assert.equal(heap.stats().liveBlocks, liveBefore - retired, "orphans were not reclaimed");
  assert.equal(heap.stats().retiredBlocks, 0);
});

/** Spawns retireThenDie, evicts the worker once it has died, and returns what it posted. */
async function retireThenDie(heap: SharedHeap, args: RetireArgs): Promise<unknown> {
  const group = spawnWorkers<RetireArgs, never>({
    module: fixtures,
    fn: "retireThenDie",
    workers: 1,
    heap,
    args,
    timeoutMs: 60_000,
  });
  const posted = await new Promise<unknown>((resolve) => group.onMessage((_, v) => resolve(v)));
  await group.terminate(0); // evicts its slot
  await group.done;
  return posted;
}

Deno.test("termination: an evicted worker's retired blocks pass to the orphans and are freed", async () => {
  const heap = SharedHeap.create({ maxBytes: 64 * MiB });
  heap.pin(); // holds the epoch: the worker can free nothing it retires
  assert.equal(await retireThenDie(heap, { blocks: 1000 }), 1000);
  // Its bags outlived it in the heap: eviction hands them to the orphans.
  assert.equal(heap.stats().retiredBlocks, 1000);
  assert.equal(heap.stats().liveBlocks, 1000);
  heap.unpin();
  for (let i = 0; i < 4; i++) heap.collect();
  assert.equal(heap.stats().liveBlocks, 0, "the dead worker's retired blocks leaked");
  assert.equal(heap.stats().retiredBlocks, 0);
  assert.equal(heap.stats().liveBytes, 0);
});

Deno.test("epochs: a worker that joins the slot of a heap dropped without close() frees its retired blocks", async () => {
  const heap = SharedHeap.create({ maxBytes: 64 * MiB });
  heap.pin(); // holds the epoch (and slot 0): the dropped heap can free nothing it retires
  const dropped = spawnWorkers<RetireArgs, never>({
    module: fixtures,
    fn: "retireThenDrop",
    workers: 1,
    heap,
    args: { blocks: 1000 },
    timeoutMs: 60_000,
  });
  const [slot, retired] = await new Promise<number[]>((resolve) =>
    dropped.onMessage((_, v) => resolve(v as number[]))
  );
  assert.equal(retired, 1000);
  await dropped.terminate(0); // its slot is free already: the eviction finds nothing to do
  await dropped.done;
  assert.equal(heap.stats().liveBlocks, 1000);
  heap.unpin();
  const [[joined, inherited]] = await runWorkers<unknown, number[]>({
    module: fixtures,
    fn: "joinAndCollect",
    workers: 1,
    heap,
    timeoutMs: 60_000,
  });
  assert.equal(joined, slot, "the newcomer should take the lowest free slot, the dropped one");
  assert.equal(inherited, 1000, "the newcomer should count the bags left in its slot");
  for (let i = 0; i < 4; i++) heap.collect();
  assert.equal(heap.stats().liveBlocks, 0, "the dropped heap's retired blocks leaked");
  assert.equal(heap.stats().retiredBlocks, 0);
});

// Each death in the retire machinery leaks at most the block in flight, and
// never lets a block be freed twice (which would take liveBlocks below 0).
const RETIRE_CRASHES: {
  site: string;
  hit: number;
  pinned: boolean;
  orphans: number;
  retiredAtDeath: number;
  leaked: number;
}[] = [
  // Appending its second bag, with the block that needs it not yet in one.
  { site: "heap.retire.bag", hit: 2, pinned: true, orphans: 0, retiredAtDeath: 62, leaked: 1 },
  // Freeing its first block: taken from its bag, not yet freed.
  { site: "heap.collect.take", hit: 1, pinned: false, orphans: 0, retiredAtDeath: -1, leaked: 1 },
  // Adopting the orphans of a worker that closed, linked but not yet counted.
  {
    site: "heap.orphans.adopt",
    hit: 1,
    pinned: true,
    orphans: 100,
    retiredAtDeath: 164,
    leaked: 0,
  },
];

for (const c of RETIRE_CRASHES) {
  Deno.test(`termination: a worker dying at crash point ${c.site} leaks at most the block in flight`, async () => {
    const heap = SharedHeap.create({ maxBytes: 64 * MiB });
    if (c.pinned) heap.pin();
    if (c.orphans > 0) {
      const [left] = await runWorkers<RetireArgs, number>({
        module: fixtures,
        fn: "retireBlocks",
        workers: 1,
        heap,
        args: { blocks: c.orphans },
        timeoutMs: 60_000,
      });
      assert.equal(left, c.orphans);
    }
    assert.equal(await retireThenDie(heap, { blocks: 1000, site: c.site, hit: c.hit }), "dying");
    if (c.retiredAtDeath >= 0) assert.equal(heap.stats().retiredBlocks, c.retiredAtDeath);
    if (c.pinned) heap.unpin();
    for (let i = 0; i < 4; i++) heap.collect();
    const stats = heap.stats();
    assert.equal(stats.liveBlocks, c.leaked, "blocks leaked, or one was freed twice");
    assert.equal(stats.retiredBlocks, 0);
    // The heap still serves the dead worker's slot and pages.
    await runWorkers<RetireArgs, number>({
      module: fixtures,
      fn: "retireBlocks",
      workers: 2,
      heap,
      args: { blocks: 500 },
      timeoutMs: 60_000,
    });
    for (let i = 0; i < 4; i++) heap.collect();
    assert.equal(heap.stats().liveBlocks, c.leaked);
  });
}

/**
 * Retires `count` blocks on this thread while one worker holds a pin of the
 * given kind, with `cores` assumed; returns how many times retire() waited
 * for reclamation. The pin holds the epoch back all along, so no wait can
 * help, and each one that happens costs a sleep.
 */
async function retireBesidePin(
  kind: HoldPinArgs["kind"],
  cores: number,
  count: number,
): Promise<number> {
  const heap = SharedHeap.create({ initialBytes: MiB, maxBytes: 64 * MiB });
  const cell = heap.allocate(8);
  const word = heap.allocate(8);
  Atomics.store(heap.i32, word >> 2, cell);
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const holder = spawnWorkers<HoldPinArgs, string>({
    module: fixtures,
    fn: "holdPinUntilTold",
    workers: 1,
    heap,
    args: { flags: flags.buffer as SharedArrayBuffer, kind, word },
    timeoutMs: 60_000,
  });
  const previous = setCoreCount(cores);
  let waits: number;
  try {
    while (Atomics.load(flags, 0) === 0) await new Promise((r) => setTimeout(r, 2));
    for (let i = 0; i < count; i++) heap.retire(heap.allocate(16));
    waits = (heap as unknown as { reclamationWaits: number }).reclamationWaits;
    assert.ok(heap.stats().retiredBlocks > count / 2, "the pin did not hold the epoch back");
  } finally {
    setCoreCount(previous);
    Atomics.store(flags, 1, 1);
    Atomics.notify(flags, 1);
  }
  assert.deepEqual(await holder.results, ["let go"]);
  await holder.terminateAll();
  for (let i = 0; i < 4; i++) heap.collect();
  assert.equal(heap.stats().retiredBlocks, 0);
  return waits;
}

Deno.test("reclamation: an operation pin held for long, more pinned workers than cores: retire waits a few times, not once per collection", async () => {
  // Limits 1024, 2048, ... 32768: two failed waits each before it doubles,
  // where a wait per collection would be about 600.
  const waits = await retireBesidePin("operation", 1, 40_000);
  assert.ok(waits >= 2 && waits <= 14, `retire waited ${waits} times`);
});

Deno.test("reclamation: an operation pin right after a pin() and a read pin is waited for", async () => {
  const waits = await retireBesidePin("operation after long pins", 1, 40_000);
  assert.ok(waits >= 2 && waits <= 14, `retire waited ${waits} times`);
});

Deno.test("reclamation: retire never waits for a read pin", async () => {
  if (heapKernel(SharedHeap.create()) === null) return; // no kernel, no read pins
  assert.equal(await retireBesidePin("read", 1, 20_000), 0);
});

Deno.test("reclamation: retire never waits for a pin()", async () => {
  assert.equal(await retireBesidePin("pin", 1, 20_000), 0);
});

Deno.test("reclamation: retire never waits while every pinned worker can have a core", async () => {
  assert.equal(await retireBesidePin("operation", 64, 20_000), 0);
});
