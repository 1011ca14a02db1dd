/**
 * BPlusTree benches, every figure a ratio against a baseline measured in the
 * same run.
 *
 * 1. **One thread, 1M i32 keys, against `sorted-btree`** (npm, class
 *    `BTree`, a single-threaded B+ tree of JS objects). Both trees hold the
 *    keys 0, 2, 4, ... (2M - 2), built once when the module loads, outside
 *    the measurements.
 *    - random lookup of present keys, 1000 per iteration (goal: at most
 *      1.5× sorted-btree's time);
 *    - random insert of 1000 new (odd) keys per iteration into the 1M-key
 *      tree; only the inserts are timed, the same keys are deleted again
 *      after `b.end()`, so both trees keep their size (goal: at most 2×);
 *    - a range scan of 1000 keys from a random start: sabre's
 *      `range({ gte, limit: 1000 })`, `scan({ gte, limit: 1000 }, fn)` (the
 *      callback form) and a cursor (`seek` then `next()`),
 *      against sorted-btree's `entries(lo)` iterator (the baseline) and its
 *      `forRange` callback (goal: at most 1× the peer's time).
 * 2. **Read scaling**: lookups in 1 worker and in 2 workers at once on the
 *    same 1M-key tree (`SABRE_BENCH_WORKERS` picks other counts, e.g.
 *    `1,2,4,8`; goal: 2 workers at least 1.8× the throughput of one;
 *    each bench name ends in `(xN)`, N = workers × operations, so the time
 *    per operation is the iteration time over N).
 * 3. **Mixed 90/10 read/write, 2 workers**: the tree's own latching against
 *    the same tree behind one global sabre `RwLock` (the baseline).
 *
 * Run: `deno bench --allow-read --allow-env bench/btree_bench.ts`
 *
 * @module
 */

// First: it captures Atomics.waitAsync before any peer package can replace it.
import { ContentionSuite, sharedStructsEnabled, workerCounts } from "./_contention.ts";
import { type BtreeBenchArgs, TREE_KEYS } from "./_btree_workers.ts";
import { seededRandom } from "../testing/harness.ts";
import sortedBtreeModule from "sorted-btree";
import { BPlusTree } from "../btree/mod.ts";
import { RwLock } from "../latch/mod.ts";
import { SharedHeap } from "../memory/mod.ts";

/** The parts of sorted-btree's BTree these benches use. */
interface SortedBTree {
  get(key: number): number | undefined;
  set(key: number, value: number): boolean;
  delete(key: number): boolean;
  entries(lowestKey?: number): IterableIterator<[number, number]>;
  forRange(
    low: number,
    high: number,
    includeHigh: boolean,
    onFound: (k: number, v: number) => void,
  ): number;
  readonly size: number;
}
/** The package is CommonJS: its class is the `default` export of the module object. */
const BTree = ((sortedBtreeModule as unknown as { default?: unknown }).default ??
  sortedBtreeModule) as unknown as new (entries?: [number, number][]) => SortedBTree;

let sink = 0;

// ====================================================================== 1. one thread

const N = TREE_KEYS;
/** Operations per iteration of the single-thread benches. */
export const BATCH = 1000;
/** Keys per range scan. */
export const SCAN = 1000;
const ORDER_LENGTH = 1 << 20;

const random = seededRandom(20240601);
/** Random present keys (even). */
const order = new Int32Array(ORDER_LENGTH);
for (let i = 0; i < ORDER_LENGTH; i++) order[i] = 2 * Math.floor(random() * N);
/** Random absent keys (odd), distinct within each batch. */
const fresh = new Int32Array(ORDER_LENGTH);
for (let i = 0; i < ORDER_LENGTH; i++) fresh[i] = 2 * Math.floor(random() * N) + 1;
for (let at = 0; at + BATCH <= ORDER_LENGTH; at += BATCH) {
  const seen = new Set<number>();
  for (let i = at; i < at + BATCH; i++) {
    while (seen.has(fresh[i])) fresh[i] = 2 * Math.floor(random() * N) + 1;
    seen.add(fresh[i]);
  }
}
/** Random scan starts, leaving room for SCAN keys after them. */
const starts = new Int32Array(1 << 16);
for (let i = 0; i < starts.length; i++) starts[i] = 2 * Math.floor(random() * (N - SCAN));

let cursor = 0;
function nextBatch(): number {
  if (cursor + BATCH > ORDER_LENGTH) cursor = 0;
  const at = cursor;
  cursor += BATCH;
  return at;
}
let startCursor = 0;
function nextStart(): number {
  return starts[startCursor++ & (starts.length - 1)];
}

const heap = SharedHeap.create({ maxBytes: 512 << 20 });
const tree = BPlusTree.create<number, number>(heap, { key: "i32", value: "i32" });
const peer = new BTree();
{
  const t0 = performance.now();
  for (let i = 0; i < N; i++) tree.set(2 * i, i);
  const t1 = performance.now();
  for (let i = 0; i < N; i++) peer.set(2 * i, i);
  const t2 = performance.now();
  console.log(
    `built 1M keys by set in increasing order: sabre ${(t1 - t0).toFixed(0)} ms, ` +
      `sorted-btree ${(t2 - t1).toFixed(0)} ms; sabre height ${tree.height}, ` +
      `heap ${(heap.stats().heapBytes / (1 << 20)).toFixed(0)} MiB`,
  );
}
for (let i = 0; i < 1000; i++) {
  const k = order[i];
  if (tree.get(k) !== k / 2 || peer.get(k) !== k / 2) throw new Error(`lost key ${k}`);
}

const LOOKUP = `lookup of random present keys, i32, ${N} keys`;

Deno.bench({
  name: `sorted-btree BTree.get (x${BATCH})`,
  group: LOOKUP,
  baseline: true,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += peer.get(order[at + i])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre BPlusTree.get (x${BATCH})`,
  group: LOOKUP,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += tree.get(order[at + i])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre BPlusTree.get, inside one heap.pin() per batch (x${BATCH})`,
  group: LOOKUP,
  fn() {
    const at = nextBatch();
    let s = 0;
    heap.pin();
    for (let i = 0; i < BATCH; i++) s += tree.get(order[at + i])!;
    heap.unpin();
    sink ^= s;
  },
});

const INSERT = `insert of random new keys into ${N} keys (deleted again untimed), i32`;

Deno.bench({
  name: `sorted-btree BTree.set of new keys (x${BATCH})`,
  group: INSERT,
  baseline: true,
  fn(b) {
    const at = nextBatch();
    b.start();
    for (let i = 0; i < BATCH; i++) peer.set(fresh[at + i], i);
    b.end();
    for (let i = 0; i < BATCH; i++) peer.delete(fresh[at + i]);
  },
});

Deno.bench({
  name: `sabre BPlusTree.set of new keys (x${BATCH})`,
  group: INSERT,
  fn(b) {
    const at = nextBatch();
    b.start();
    for (let i = 0; i < BATCH; i++) tree.set(fresh[at + i], i);
    b.end();
    for (let i = 0; i < BATCH; i++) tree.delete(fresh[at + i]);
  },
});

Deno.bench({
  name: `sabre BPlusTree.insert of new keys (x${BATCH})`,
  group: INSERT,
  fn(b) {
    const at = nextBatch();
    b.start();
    for (let i = 0; i < BATCH; i++) tree.insert(fresh[at + i], i);
    b.end();
    for (let i = 0; i < BATCH; i++) tree.delete(fresh[at + i]);
  },
});

const DELETE = `delete of the keys just inserted (inserted untimed), i32, ${N} keys`;

Deno.bench({
  name: `sorted-btree BTree.delete (x${BATCH})`,
  group: DELETE,
  baseline: true,
  fn(b) {
    const at = nextBatch();
    for (let i = 0; i < BATCH; i++) peer.set(fresh[at + i], i);
    b.start();
    for (let i = 0; i < BATCH; i++) peer.delete(fresh[at + i]);
    b.end();
  },
});

Deno.bench({
  name: `sabre BPlusTree.delete (x${BATCH})`,
  group: DELETE,
  fn(b) {
    const at = nextBatch();
    for (let i = 0; i < BATCH; i++) tree.set(fresh[at + i], i);
    b.start();
    for (let i = 0; i < BATCH; i++) tree.delete(fresh[at + i]);
    b.end();
  },
});

const RANGE = `range scan of ${SCAN} keys from a random start, i32, ${N} keys`;

Deno.bench({
  name: `sorted-btree entries(lo) iterator (x${SCAN})`,
  group: RANGE,
  baseline: true,
  fn() {
    const lo = nextStart();
    let s = 0;
    let n = 0;
    const it = peer.entries(lo);
    for (let e = it.next(); !e.done && n < SCAN; e = it.next(), n++) s += e.value[1];
    if (n !== SCAN) throw new Error(`scan saw ${n} keys`);
    sink ^= s;
  },
});

Deno.bench({
  name: `sorted-btree forRange callback (x${SCAN})`,
  group: RANGE,
  fn() {
    const lo = nextStart();
    let s = 0;
    const n = peer.forRange(lo, lo + 2 * SCAN, false, (_k, v) => {
      s += v;
    });
    if (n !== SCAN) throw new Error(`scan saw ${n} keys`);
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre range({ gte, limit }) (x${SCAN})`,
  group: RANGE,
  fn() {
    const lo = nextStart();
    let s = 0;
    let n = 0;
    for (const [, v] of tree.range({ gte: lo, limit: SCAN })) {
      s += v;
      n++;
    }
    if (n !== SCAN) throw new Error(`scan saw ${n} keys`);
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre range({ gte, lt }) (x${SCAN})`,
  group: RANGE,
  fn() {
    const lo = nextStart();
    let s = 0;
    let n = 0;
    for (const [, v] of tree.range({ gte: lo, lt: lo + 2 * SCAN })) {
      s += v;
      n++;
    }
    if (n !== SCAN) throw new Error(`scan saw ${n} keys`);
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre scan({ gte, limit }, fn) callback (x${SCAN})`,
  group: RANGE,
  fn() {
    const lo = nextStart();
    let s = 0;
    let n = 0;
    tree.scan({ gte: lo, limit: SCAN }, (_k, v) => {
      s += v;
      n++;
    });
    if (n !== SCAN) throw new Error(`scan saw ${n} keys`);
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre cursor seek + next() (x${SCAN})`,
  group: RANGE,
  fn() {
    const lo = nextStart();
    let s = 0;
    using c = tree.cursor();
    c.seek(lo);
    for (let i = 0; i < SCAN; i++) s += c.next()![1];
    sink ^= s;
  },
});

// ====================================================================== 2, 3. workers

const ITERATIONS = { n: 30, warmup: 3 };
/** Lookups per measured worker per batch. */
export const LOOKUP_OPS = 100_000;
/** Mixed operations per worker per batch. */
export const MIXED_OPS = 50_000;

if (!sharedStructsEnabled()) {
  const sharedHeap = SharedHeap.create({ maxBytes: 512 << 20 });
  const shared = BPlusTree.create<number, number>(sharedHeap, { key: "i32", value: "i32" });
  shared.bulkLoad((function* () {
    for (let i = 0; i < N; i++) yield [2 * i, i] as [number, number];
  })());
  const args: BtreeBenchArgs = {
    tree: shared.handle,
    lock: RwLock.create().handle,
    seed: 77,
  };
  const readers = workerCounts("SABRE_BENCH_WORKERS", [1, 2]);
  const suite = await ContentionSuite.start({
    module: new URL("./_btree_workers.ts", import.meta.url),
    setup: "btreeScenarios",
    workers: Math.max(2, ...readers),
    args,
  });
  const SCALING = `read scaling: lookups, ${N} keys, ${readers.join(", ")} workers`;
  for (const count of readers) {
    suite.bench({
      name: `sabre BPlusTree.get, ${count} worker${count === 1 ? "" : "s"}`,
      group: SCALING,
      baseline: count === readers[0],
      scenario: "lookups",
      ops: LOOKUP_OPS,
      measured: count,
      ...ITERATIONS,
    });
  }
  const mixedSuite = await ContentionSuite.start({
    module: new URL("./_btree_workers.ts", import.meta.url),
    setup: "btreeScenarios",
    workers: 2,
    args,
  });
  const MIXED = `mixed 90% lookups / 10% insert or delete, ${N} keys, 2 workers`;
  mixedSuite.bench({
    name: "one global sabre RwLock around the tree",
    group: MIXED,
    baseline: true,
    scenario: "mixed, one RwLock",
    ops: MIXED_OPS,
    ...ITERATIONS,
  });
  mixedSuite.bench({
    name: "sabre BPlusTree's own latches",
    group: MIXED,
    scenario: "mixed, sabre latches",
    ops: MIXED_OPS,
    ...ITERATIONS,
  });
}

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
