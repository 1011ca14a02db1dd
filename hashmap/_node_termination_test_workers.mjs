// Workers killed at random moments under Node, whose `worker.terminate()`
// stops a thread wherever it is (inside a map operation, inside the
// WebAssembly kernel) and settles once it has stopped. Deno's cannot: it
// waits for the worker's event loop (ARCHITECTURE.md, "Crash points").
//
// Per kill: three workers run random operations on keys they own (the
// `ownedKeys` fixture; i32 keys, or string keys on odd kills), recording each completed one and the one in flight;
// worker 0 runs until it is terminated 1 to 30 ms after it got going, and
// the parent then evicts its heap slot. A newcomer worker checks every key
// against what its owner did (`verifyAndRewrite`), rewrites them and grows
// the map. `size` must be exact where the kernel runs: each write makes its
// CAS and its count in one kernel call. Without it (a Node whose WebAssembly
// memory has no growable buffer) the size may be one off.
//
//   node _node_termination_test_workers.mjs <bundle.mjs> [kills] [seed]
//
// The bundle is `_node_termination_test_workers.ts` built with `deno bundle`.
// Prints one JSON line: { kills: [...] }, or { error } on failure.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const bundle = isMainThread ? process.argv[2] : workerData.bundle;
if (!bundle) throw new Error("usage: node _node_termination_test_workers.mjs <bundle.mjs> [kills]");
const bundleUrl = bundle.startsWith("file:") ? bundle : pathToFileURL(resolve(bundle)).href;
const { HashMap, SharedHeap, heapKernel, ownedKeys, verifyAndRewrite, verifyArgsAfter } =
  await import(
    bundleUrl
  );

/** A small seeded generator (mulberry32), for the fixtures' `ctx.random`. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

if (!isMainThread) {
  const { role, index, workers, args, seed } = workerData;
  const heap = SharedHeap.attach(workerData.heap);
  const random = seeded(seed);
  const ctx = {
    index,
    workers,
    args,
    heap,
    seed,
    random,
    randomInt: (bound) => Math.floor(random() * bound),
    post: (value) => parentPort.postMessage({ post: value }),
    checkpoint() {},
  };
  try {
    const result = role === "owned" ? ownedKeys(ctx) : verifyAndRewrite(ctx);
    heap.close();
    parentPort.postMessage({ result });
  } catch (error) {
    parentPort.postMessage({ error: String(error?.stack ?? error) });
  }
} else {
  const kills = Number(process.argv[3] ?? "4");
  // Another seed gives other operations and other delays, for long runs.
  const seed = Number(process.argv[4] ?? "0");
  // Blocks one kill may leak: an unpublished entry, a block being retired
  // or freed, or a table's two blocks in the last step of its retirement.
  const LEAK_BOUND = 4;
  const random = seeded(0x5eed + seed);
  const report = [];
  const run = (worker) =>
    new Promise((done, fail) => {
      worker.on("message", (m) => {
        if (m.error !== undefined) fail(new Error(m.error));
        else if ("result" in m) done(m.result);
      });
      worker.on("error", fail);
    });
  try {
    for (let kill = 0; kill < kills; kill++) {
      const heap = SharedHeap.create({ initialBytes: 4 * 65536, maxBytes: 256 << 20 });
      const stringKeys = kill % 2 === 1;
      const map = HashMap.create(heap, { key: stringKeys ? "string" : "i32", value: "i32" });
      const workers = 3;
      const perWorker = 20_000;
      const args = {
        map: map.handle,
        perWorker,
        state: new SharedArrayBuffer(workers * perWorker * 8),
        pending: new SharedArrayBuffer(workers * 16),
        flags: new SharedArrayBuffer(8),
        opsBefore: 20_000,
        opsAfter: 0,
        dieAt: undefined,
        killedAtRandom: new SharedArrayBuffer(4),
        stringKeys,
      };
      const spawn = (role, index, workerArgs) =>
        new Worker(new URL(import.meta.url), {
          workerData: {
            bundle: bundleUrl,
            role,
            index,
            workers,
            args: workerArgs,
            heap: heap.handle,
            seed: (seed * 1000 + kill) * 7919 + index,
          },
        });
      const registered = heap.stats().workers;
      const doomed = spawn("owned", 0, args);
      const slot = new Promise((got, fail) => {
        doomed.on("message", (m) => {
          if (m.error !== undefined) fail(new Error(m.error));
          else if ("post" in m) got(m.post);
          else fail(new Error("worker 0 finished; it should run until killed"));
        });
        doomed.on("error", fail);
      });
      const others = [1, 2].map((index) => run(spawn("owned", index, args)));
      const doomedSlot = await slot;
      // The delay starts once worker 0 runs its operations again: on a busy
      // machine it may wait for a core for longer than the delay itself.
      const beats = new Int32Array(args.killedAtRandom);
      while (Atomics.load(beats, 0) === 0) await new Promise((wake) => setTimeout(wake, 1));
      const delayMs = 1 + Math.floor(random() * 30);
      await new Promise((wake) => setTimeout(wake, delayMs));
      const beatsAtKill = Atomics.load(new Int32Array(args.killedAtRandom), 0);
      await doomed.terminate(); // settles once the thread has stopped
      heap.evictWorker(doomedSlot);
      const seqs = await Promise.all(others);
      if (heap.stats().workers !== registered) {
        throw new Error(`kill ${kill}: ${heap.stats().workers} workers, expected ${registered}`);
      }
      const grow = 2 * map.capacity;
      const sizeSlack = heapKernel(heap) === null ? 1 : 0;
      const verifyArgs = { ...verifyArgsAfter(args, workers, grow), sizeSlack };
      const size = await run(spawn("verify", 0, verifyArgs));
      if (Math.abs(map.size - size) > sizeSlack || size < grow) {
        throw new Error(`kill ${kill}: size ${map.size} for ${size} keys (grew by ${grow})`);
      }
      // What the dead worker had retired outlived it in the heap: once the
      // map is destroyed and everything collected, only the blocks it had in
      // flight may be missing (an entry not yet published or retired, a
      // block taken for freeing, a table it was retiring).
      const kernel = heapKernel(heap) !== null;
      map.destroy();
      for (let i = 0; i < 4; i++) heap.collect();
      const { liveBlocks: leaked, retiredBlocks } = heap.stats();
      if (leaked > LEAK_BOUND || leaked < 0 || retiredBlocks !== 0) {
        throw new Error(
          `kill ${kill}: ${leaked} blocks leaked (at most ${LEAK_BOUND}), ${retiredBlocks} retired`,
        );
      }
      report.push({ kill, stringKeys, delayMs, beatsAtKill, seqs, size, kernel, leaked });
      heap.close();
    }
    console.log(JSON.stringify({ kills: report }));
  } catch (error) {
    console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
    process.exitCode = 1;
  }
}
