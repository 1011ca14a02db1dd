/**
 * `deno task demo`: workers share one SharedHeap without copying anything.
 *
 * Each worker attaches the heap from its handle, finds a shared counter
 * table through a named root, and runs a mixed allocate/fill/check/free load
 * while counting its work in shared memory. The main thread then checks that
 * every count arrived and that all memory came back.
 *
 * Flags: `--workers N` (default 4), `--ops N` per worker (default 200000).
 *
 * @module
 */

import { SharedHeap, type SharedHeapHandle } from "../mod.ts";

interface Job {
  heap: SharedHeapHandle;
  index: number;
  ops: number;
}

function flag(name: string, fallback: number): number {
  const at = Deno.args.indexOf(`--${name}`);
  const value = at >= 0 ? Number(Deno.args[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Cannot run the demo as '--${name}' must be a positive integer`);
  }
  return value;
}

/** Worker body: churn blocks of mixed sizes and count operations in the shared table. */
function work(job: Job): { allocated: number; bytes: number } {
  const heap = SharedHeap.attach(job.heap);
  const table = heap.root("demo.counters");
  if (table === undefined) throw new Error("root 'demo.counters' missing");
  const counters = table.offset >> 2;
  const live: number[] = [];
  let seed = job.index * 7919 + 1;
  let bytes = 0;
  for (let i = 0; i < job.ops; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    if (live.length < 64 || (seed & 1) === 0) {
      const size = 16 + (seed % 2000);
      const ptr = heap.allocate(size);
      heap.i32[ptr >> 2] = job.index;
      live.push(ptr);
      bytes += size;
    } else {
      const ptr = live.splice(seed % live.length, 1)[0];
      if (heap.i32[ptr >> 2] !== job.index) throw new Error("block overwritten by another worker");
      heap.free(ptr);
    }
  }
  for (const ptr of live) heap.free(ptr);
  Atomics.add(heap.i32, counters + job.index, job.ops);
  heap.close();
  return { allocated: job.ops, bytes };
}

const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope ===
  "function";

if (!inWorker && import.meta.main) {
  const workers = flag("workers", 4);
  const ops = flag("ops", 200_000);
  const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 512 << 20 });
  const counters = heap.allocateZeroed(4 * workers);
  heap.setRoot("demo.counters", {
    kind: "demo.Counters",
    version: 1,
    sab: heap.sab,
    offset: counters,
  });
  const started = performance.now();
  const results = await Promise.all(
    Array.from(
      { length: workers },
      (_, index) =>
        new Promise<{ allocated: number; bytes: number }>((resolve, reject) => {
          const worker = new Worker(new URL(import.meta.url).href, { type: "module" });
          worker.onmessage = (e) => {
            worker.terminate();
            if (e.data.error) reject(new Error(e.data.error));
            else resolve(e.data);
          };
          worker.onerror = (e) => {
            e.preventDefault();
            worker.terminate();
            reject(new Error(e.message));
          };
          worker.postMessage({ heap: heap.handle, index, ops } satisfies Job);
        }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const total = results.reduce((s, r) => s + r.allocated, 0);
  for (let i = 0; i < workers; i++) {
    if (Atomics.load(heap.i32, (counters >> 2) + i) !== ops) {
      throw new Error(`worker ${i} lost counts`);
    }
  }
  heap.free(counters);
  const stats = heap.stats();
  if (stats.liveBlocks !== 0) throw new Error(`${stats.liveBlocks} blocks leaked`);
  console.log(
    `${workers} workers, ${total.toLocaleString("en")} heap operations in ${
      seconds.toFixed(2)
    } s ` +
      `(${
        Math.round(total / seconds).toLocaleString("en")
      } ops/s); heap grew ${stats.growCount} times ` +
      `to ${(stats.heapBytes / 2 ** 20).toFixed(0)} MiB; every block came back.`,
  );
} else if (inWorker) {
  const scope = globalThis as unknown as {
    onmessage: (e: MessageEvent<Job>) => void;
    postMessage(message: unknown): void;
  };
  scope.onmessage = (e) => {
    try {
      scope.postMessage(work(e.data));
    } catch (error) {
      scope.postMessage({ error: String(error) });
    }
  };
}
