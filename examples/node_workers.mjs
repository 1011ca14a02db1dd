// sabre under Node's worker_threads: the main thread creates the shared
// structures, each worker attaches them from handles (one postMessage, here
// through `workerData`), and everyone works on them at once. The main thread
// takes a Mutex with `lockAsync()` meanwhile, so it never blocks.
//
// Run with a build of sabre as JavaScript, for example:
//   deno bundle --platform browser -o sabre.mjs mod.ts
//   node examples/node_workers.mjs ./sabre.mjs
// It prints one JSON line with what it checked.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const WORKERS = 4;
const ROUNDS = 2000;

const bundle = isMainThread ? process.argv[2] : workerData.bundle;
if (!bundle) throw new Error("usage: node node_workers.mjs <path to sabre bundled as .mjs>");
const bundleUrl = bundle.startsWith("file:") ? bundle : pathToFileURL(resolve(bundle)).href;
const { BPlusTree, HashMap, Loc, Mutex, SeqCell, SharedHeap, Xt } = await import(bundleUrl);

if (isMainThread) {
  const heap = SharedHeap.create();
  const words = HashMap.create(heap, { key: "string", value: "i32" });
  const index = BPlusTree.create(heap, { key: "i32", value: "i32" });
  const mutex = Mutex.create(heap);
  const progress = SeqCell.create({ done: "i32", half: "f64" });
  const accounts = Loc.makeArray(heap, 8, 100);
  const plain = new Int32Array(new SharedArrayBuffer(4)); // guarded by `mutex`
  const shared = {
    bundle: bundleUrl,
    heap: heap.handle,
    words: words.handle,
    index: index.handle,
    mutex: mutex.handle,
    progress: progress.handle,
    accounts: accounts.map((loc) => loc.handle),
    plain: plain.buffer,
  };
  const finished = [];
  for (let w = 0; w < WORKERS; w++) {
    const worker = new Worker(new URL(import.meta.url), { workerData: { ...shared, w } });
    finished.push(
      new Promise((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
      }),
    );
  }
  // The main thread competes for the mutex without blocking its event loop.
  let mainIncrements = 0;
  let running = true;
  const all = Promise.all(finished).finally(() => (running = false));
  while (running) {
    const guard = await mutex.lockAsync();
    plain[0]++;
    mainIncrements++;
    guard.unlock();
    await new Promise((r) => setTimeout(r, 1));
  }
  const torn = (await all).reduce((n, report) => n + report.torn, 0);
  const total = Xt.commit((xt) => accounts.reduce((sum, loc) => sum + xt.get(loc), 0));
  let ordered = 0;
  let previous = -Infinity;
  for (const [key] of index.entries()) {
    if (key > previous) ordered++;
    previous = key;
  }
  const report = {
    words: words.get("request"),
    indexSize: index.size,
    ordered,
    increments: plain[0] - mainIncrements,
    total,
    done: progress.read().done,
    torn,
  };
  const expected = {
    words: WORKERS * ROUNDS,
    indexSize: WORKERS * ROUNDS,
    ordered: WORKERS * ROUNDS,
    increments: WORKERS * ROUNDS,
    total: 800,
    done: WORKERS * ROUNDS,
    torn: 0,
  };
  const ok = Object.keys(expected).every((k) => report[k] === expected[k]);
  console.log(JSON.stringify({ ok, report, expected }));
  process.exitCode = ok ? 0 : 1;
} else {
  const { w } = workerData;
  SharedHeap.attach(workerData.heap);
  const words = HashMap.attach(workerData.words);
  const index = BPlusTree.attach(workerData.index);
  const mutex = Mutex.attach(workerData.mutex);
  const progress = SeqCell.attach(workerData.progress);
  const accounts = workerData.accounts.map((handle) => Loc.attach(handle));
  const plain = new Int32Array(workerData.plain);
  let torn = 0;
  for (let i = 0; i < ROUNDS; i++) {
    words.add("request", 1);
    index.set(i * WORKERS + w, w);
    const guard = mutex.lock();
    try {
      plain[0]++;
    } finally {
      guard.unlock();
    }
    const from = accounts[(i + w) % accounts.length];
    const to = accounts[(i + w + 3) % accounts.length];
    Xt.commit((xt) => {
      xt.decr(from);
      xt.incr(to);
    });
    progress.update((p) => ({ done: p.done + 1, half: (p.done + 1) / 2 }));
    const snapshot = progress.read();
    if (snapshot.half !== snapshot.done / 2) torn++;
  }
  parentPort.postMessage({ torn });
}
