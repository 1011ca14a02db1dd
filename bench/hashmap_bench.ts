/**
 * HashMap benches, every figure a ratio against a baseline measured in the
 * same run.
 *
 * 1. **One thread, 1M entries, against JS `Map`.** `get` of random present
 *    keys (i32 keys, and 16-byte string keys), `set` over existing keys, and
 *    insertion of 1M new keys into an empty map; also `get` and `set` on a
 *    10,000-entry map that fits in the caches, which shows the fixed cost per
 *    operation.
 *    The "inside one heap.pin() per batch" benches pin once around the
 *    batch: nested pins only bump a counter in JS, so the difference from
 *    the plain bench is the cost of the pin+unpin every operation pays.
 *    Goals: `get` at most 1.5× Map's time for i32 keys and 2× for 16-byte
 *    strings. The string group also times reading each key's characters and
 *    nothing else: the floor under any lookup that hashes the key itself
 *    (and, to show where that floor comes from, reading one character). A
 *    second string group looks up keys decoded from bytes (flat strings,
 *    as read from a file, a socket or JSON) instead of keys built by
 *    concatenation, whose characters V8 reaches through one more hop. Both
 *    string groups also time the string kernel's reading of the key alone
 *    (what `get` does before its lookup where the runtime has it);
 *    `SABRE_STRING_KERNEL=0` in the environment runs them without it.
 *    A setup step prints the bytes per entry of an i32 → i32 map
 *    just before and just after it grows. Another group reads a map whose
 *    bulk load ended with half of a growth done: as left (reads of moved
 *    keys look in both tables), and after `finishResize()`. Two more
 *    iterate over 10,000 entries, straight through and with an `await`
 *    after each entry, against a Map iterated the same ways.
 * 2. **Concache's shape.** W writers and R readers over 10,000 keys, uniform
 *    or Zipf(1.03), on four maps: `sharedmap` (npm, the baseline), an
 *    open-addressing table under one sabre RwLock, and sabre's HashMap with
 *    i32 and with string keys (sharedmap has string keys only; the string
 *    row compares like with like). Each configuration has a "reads" group
 *    (the readers are measured, the writers run beside them until they
 *    finish) and a "writes" group (the other way round); time per operation
 *    is the inverse of total reads/s or writes/s. Goal: at least 5×
 *    sharedmap's reads/s. Batches are long (see READ_OPS) so that time
 *    slicing on a machine with fewer cores than threads weighs the same on
 *    every map. Configurations: every pair of
 *    `SABRE_BENCH_WRITERS` (default 1) and `SABRE_BENCH_READERS` (default
 *    1,3), comma-separated counts.
 * 3. **Against message passing.** A worker owns a JS Map and answers get and
 *    set messages, one reply per request (what users do without shared
 *    memory); the main thread sends requests one round trip at a time, or
 *    all of a batch at once. The sabre rows do the same on a HashMap
 *    directly. Goal: at least 100× the round-trip ops/s.
 * 4. **Contended add.** W workers (`SABRE_BENCH_ADDERS`, default 2,4) each
 *    add 1 to counters, all at once: 16 hot keys, or Zipf(1.03) over 10,000
 *    keys. Against the RwLock-guarded table (the baseline), and against
 *    `Atomics.add` on an Int32Array indexed by the key, the floor for any
 *    counter table (it needs the key space known in advance).
 *
 * Every bench runs a batch of operations per iteration and its name ends in
 * `(xN)`; within a group N is the same for every bench, so `deno bench`'s own
 * summary ratios are per operation too, and `deno task bench:report` divides.
 *
 * Run: `deno bench --allow-read --allow-env bench/hashmap_bench.ts`
 *
 * @module
 */

// First: it captures Atomics.waitAsync before any peer package can replace it.
import { ContentionSuite, workerCounts } from "./_contention.ts";
import {
  CONCACHE_MAPS,
  type ConcacheArgs,
  concacheScenario,
  COUNTER_KEY_SETS,
  COUNTER_MAPS,
  type CounterArgs,
  counterScenario,
  GET,
  KEYS,
  LockedTable,
  type MapRequest,
  SET,
  SharedMap,
  stringKey,
} from "./_hashmap_workers.ts";
import { HashMap } from "../hashmap/mod.ts";
import { seededRandom } from "../testing/harness.ts";
import { SharedHeap } from "../memory/mod.ts";
import { heapWithKernel } from "../testing/kernel.ts";
import { encodeAsciiKey } from "../memory/_murmur.ts";
import { setStringKernelEnabled } from "../memory/_string_kernel.ts";
import { kernelKeyWords, stringKernelForRead } from "../memory/_heap_hooks.ts";

let sink = 0;

// ====================================================================== 1. one thread

/** Entries of the single-thread maps. */
const N = 1_000_000;
/** Operations per iteration of the single-thread benches. */
export const BATCH = 1000;
/** Random indices into the keys, walked BATCH at a time. */
const ORDER_LENGTH = 1 << 20;

const random = seededRandom(20240601);
const order = new Int32Array(ORDER_LENGTH);
for (let i = 0; i < ORDER_LENGTH; i++) order[i] = Math.floor(random() * N);
let cursor = 0;
/** Start of the next batch in `order`; consecutive batches read different keys. */
function nextBatch(): number {
  if (cursor + BATCH > ORDER_LENGTH) cursor = 0;
  const at = cursor;
  cursor += BATCH;
  return at;
}

/** The i32 key of index i: small integers, so that Map stores them unboxed. */
const intKey = (i: number) => i * 7;

/**
 * The one heap of every map that this thread reads or writes, as the README
 * advises: once a thread has read maps of several heaps, its gets over 1M
 * keys take longer, most likely as its kernel calls meet several heaps'
 * functions (see ARCHITECTURE.md, "Performance ceilings"); with a heap per
 * map, the 1M i32 get group read 1.0-1.7x Map.get from run to run. The maps
 * of the JavaScript-path rows live in heaps without a kernel.
 */
// SABRE_STRING_KERNEL=0: string gets encode their keys in JavaScript, as
// where the runtime lacks the string kernel (memory/_string_kernel.ts); to
// compare the two in separate runs. Its floor rows are then left out.
if (Deno.env.get("SABRE_STRING_KERNEL") === "0") setStringKernelEnabled(false);
const mainHeap = SharedHeap.create({ maxBytes: 1 << 30 });
const hasStringKernel = stringKernelForRead(mainHeap) !== null;

// ------------------------------------------------------------ bytes per entry

/**
 * Memory of an i32 → i32 map at the edge of growth. A table of C slots grows
 * when a claim makes more than 3C/4 slots used: with C = 2^20 that is at
 * 786,433 keys. "Before" is the heap's live bytes at 786,432 keys; "after"
 * is at 786,433 keys once the migration to the 2^21-slot table is done and
 * the old table reclaimed (overwrites drive the migration: every write
 * helps with 512 slots). "During" is the peak while both tables exist.
 */
function bytesPerEntry(): void {
  const capacity = 1 << 20;
  const heap = mainHeap;
  const empty = heap.stats().liveBytes;
  const map = HashMap.create(heap, { key: "i32", value: "i32", capacity });
  const fill = (capacity * 3) / 4;
  for (let k = 0; k < fill; k++) map.set(k, k);
  const settle = () => {
    for (let i = 0; i < 4; i++) heap.collect();
    return heap.stats().liveBytes - empty;
  };
  const before = settle();
  if (map.capacity !== capacity) throw new Error(`grew early: capacity ${map.capacity}`);
  map.set(fill, fill);
  const during = heap.stats().liveBytes - empty;
  let rounds = 0;
  while (map.capacity === capacity) {
    const k = rounds++ % fill;
    map.set(k, k);
  }
  // The old table is retired as it was copied, two chunks a write: as many
  // overwrites again (and a few more) finish that. Then reclaim the entries
  // they replaced and the old table.
  for (let i = 0; i < rounds + 64; i++) {
    const k = (rounds + i) % fill;
    map.set(k, k);
  }
  const after = settle();
  const size = map.size;
  const grown = map.capacity;
  map.destroy();
  heap.collect();
  const perEntry = (bytes: number, entries: number) => (bytes / entries).toFixed(1);
  console.log(
    [
      "HashMap i32 -> i32, bytes per entry (heap liveBytes of the map / size; an entry is one",
      "8-byte block: key and value, the hash being recomputed from the key; a slot is one 4-byte word):",
      `  before growth: ${perEntry(before, fill)} B at ${fill} entries, ${capacity} slots` +
      ` (accounting: 8 B entry + 4 B x ${capacity} / ${fill} slots = ` +
      `${(8 + (4 * capacity) / fill).toFixed(1)} B, plus header)`,
      `  after growth:  ${perEntry(after, size)} B at ${size} entries, ${grown} slots` +
      ` (accounting: 8 + 4 x ${grown} / ${size} = ${(8 + (4 * grown) / size).toFixed(1)} B)`,
      `  peak during the migration, both tables live: ${perEntry(during, size)} B` +
      ` (${rounds} overwrites finished it, and ${rounds + 64} more the old table's retirement)`,
    ].join("\n"),
  );
}
bytesPerEntry();

// ------------------------------------------------------------ i32 keys

const intMap = HashMap.create(mainHeap, { key: "i32", value: "i32" });
/** The same map in a heap without the WebAssembly kernel: get's JavaScript path. */
const plainIntMap = HashMap.create(heapWithKernel(false, { maxBytes: 256 << 20 }), {
  key: "i32",
  value: "i32",
});
const jsIntMap = new Map<number, number>();
for (let i = 0; i < N; i++) {
  intMap.set(intKey(i), i);
  plainIntMap.set(intKey(i), i);
  jsIntMap.set(intKey(i), i);
}
for (let i = 0; i < 1000; i++) {
  const k = intKey(order[i]);
  if (intMap.get(k) !== order[i]) throw new Error(`HashMap lost key ${k}`);
}

const GET_INT = "get, i32 keys, 1M entries";

Deno.bench({
  name: `Map.get (x${BATCH})`,
  group: GET_INT,
  baseline: true,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += jsIntMap.get(intKey(order[at + i]))!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get (x${BATCH})`,
  group: GET_INT,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += intMap.get(intKey(order[at + i]))!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get, inside one heap.pin() per batch (x${BATCH})`,
  group: GET_INT,
  fn() {
    const at = nextBatch();
    let s = 0;
    mainHeap.pin();
    for (let i = 0; i < BATCH; i++) s += intMap.get(intKey(order[at + i]))!;
    mainHeap.unpin();
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: GET_INT,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += plainIntMap.get(intKey(order[at + i]))!;
    sink ^= s;
  },
});

// A bulk load that ends during a growth: 2^20 slots, and 1,023 sets after
// the one that started the growth, which copied 2,046 of its 4,096 chunks
// (each write copies two). No write follows to finish it, so in the first
// map reads of the keys already moved (frozen in the old table) look in the
// new table too; the second map had finishResize() called.
const LOADED = (1 << 20) * 3 / 4 + 1024;
const loadedMaps = [
  { label: "growth left half done", finish: false },
  { label: "after finishResize()", finish: true },
].map(({ label, finish }) => {
  const map = HashMap.create(mainHeap, {
    key: "i32",
    value: "i32",
    capacity: 1 << 20,
  });
  for (let i = 0; i < LOADED; i++) map.set(intKey(i), i);
  if (finish && !map.finishResize()) throw new Error("finishResize found work it could not do");
  if (map.capacity !== (finish ? 1 << 21 : 1 << 20)) {
    throw new Error(`${label}: unexpected capacity ${map.capacity}`);
  }
  return { label, map };
});
const GET_LOADED = `get, i32 keys, ${LOADED} entries, after a bulk load that ended during a growth`;

Deno.bench({
  name: `Map.get (x${BATCH})`,
  group: GET_LOADED,
  baseline: true,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += jsIntMap.get(intKey(order[at + i] % LOADED))!;
    sink ^= s;
  },
});

for (const { label, map } of loadedMaps) {
  Deno.bench({
    name: `sabre HashMap.get, ${label} (x${BATCH})`,
    group: GET_LOADED,
    fn() {
      const at = nextBatch();
      let s = 0;
      for (let i = 0; i < BATCH; i++) s += map.get(intKey(order[at + i] % LOADED))!;
      sink ^= s;
    },
  });
}

const SET_INT = "set existing key, i32 keys, 1M entries";

Deno.bench({
  name: `Map.set (x${BATCH})`,
  group: SET_INT,
  baseline: true,
  fn() {
    const at = nextBatch();
    for (let i = 0; i < BATCH; i++) jsIntMap.set(intKey(order[at + i]), at + i);
  },
});

Deno.bench({
  name: `sabre HashMap.set (x${BATCH})`,
  group: SET_INT,
  fn() {
    const at = nextBatch();
    for (let i = 0; i < BATCH; i++) intMap.set(intKey(order[at + i]), at + i);
  },
});

Deno.bench({
  name: `sabre HashMap.set, inside one heap.pin() per batch (x${BATCH})`,
  group: SET_INT,
  fn() {
    const at = nextBatch();
    mainHeap.pin();
    for (let i = 0; i < BATCH; i++) intMap.set(intKey(order[at + i]), at + i);
    mainHeap.unpin();
  },
});

// ------------------------------------------------------------ small map

/** Entries of the small map: it fits in the caches, so this shows the fixed cost per operation. */
const SMALL = 10_000;
const smallMap = HashMap.create(mainHeap, { key: "i32", value: "i32" });
const plainSmallMap = HashMap.create(heapWithKernel(false), { key: "i32", value: "i32" });
const jsSmallMap = new Map<number, number>();
for (let i = 0; i < SMALL; i++) {
  smallMap.set(intKey(i), i);
  plainSmallMap.set(intKey(i), i);
  jsSmallMap.set(intKey(i), i);
}
const smallOrder = new Int32Array(1 << 16);
for (let i = 0; i < smallOrder.length; i++) smallOrder[i] = intKey(Math.floor(random() * SMALL));
let smallCursor = 0;
function nextSmallBatch(): number {
  if (smallCursor + BATCH > smallOrder.length) smallCursor = 0;
  const at = smallCursor;
  smallCursor += BATCH;
  return at;
}

const GET_SMALL = `get, i32 keys, ${SMALL} entries (in cache)`;

Deno.bench({
  name: `Map.get (x${BATCH})`,
  group: GET_SMALL,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += jsSmallMap.get(smallOrder[at + i])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get (x${BATCH})`,
  group: GET_SMALL,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += smallMap.get(smallOrder[at + i])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get, inside one heap.pin() per batch (x${BATCH})`,
  group: GET_SMALL,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    mainHeap.pin();
    for (let i = 0; i < BATCH; i++) s += smallMap.get(smallOrder[at + i])!;
    mainHeap.unpin();
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: GET_SMALL,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += plainSmallMap.get(smallOrder[at + i])!;
    sink ^= s;
  },
});

// Misses of a map of f64 values: the kernel answers them itself, as an f64
// value equal to one of its sentinels comes back as "take the general path".
const MISS_F64 = `get of absent keys, i32 keys, f64 values, ${SMALL} entries (in cache)`;
const f64SmallMap = HashMap.create(mainHeap, { key: "i32", value: "f64" });
const jsF64SmallMap = new Map<number, number>();
for (let i = 0; i < SMALL; i++) {
  f64SmallMap.set(intKey(i), i + 0.5);
  jsF64SmallMap.set(intKey(i), i + 0.5);
}

Deno.bench({
  name: `Map.get (x${BATCH})`,
  group: MISS_F64,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    // Keys are multiples of 7: one more is absent.
    for (let i = 0; i < BATCH; i++) {
      if (jsF64SmallMap.get(smallOrder[at + i] + 1) === undefined) s++;
    }
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get (x${BATCH})`,
  group: MISS_F64,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) if (f64SmallMap.get(smallOrder[at + i] + 1) === undefined) s++;
    sink ^= s;
  },
});

const SET_SMALL = `set existing key, i32 keys, ${SMALL} entries (in cache)`;

Deno.bench({
  name: `Map.set (x${BATCH})`,
  group: SET_SMALL,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) jsSmallMap.set(smallOrder[at + i], at + i);
  },
});

Deno.bench({
  name: `sabre HashMap.set (x${BATCH})`,
  group: SET_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) smallMap.set(smallOrder[at + i], at + i);
  },
});

Deno.bench({
  name: `sabre HashMap.set, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: SET_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) plainSmallMap.set(smallOrder[at + i], at + i);
  },
});

Deno.bench({
  name: `sabre HashMap.swap, which also answers the previous value (x${BATCH})`,
  group: SET_SMALL,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += smallMap.swap(smallOrder[at + i], at + i)!;
    sink ^= s;
  },
});

const UPDATE_SMALL = `atomic updates of existing keys, i32 keys, ${SMALL} entries (in cache)`;

Deno.bench({
  name: `Map, get then set: a counter (x${BATCH})`,
  group: UPDATE_SMALL,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      jsSmallMap.set(k, jsSmallMap.get(k)! + 1);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.add (x${BATCH})`,
  group: UPDATE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) smallMap.add(smallOrder[at + i], 1);
  },
});

Deno.bench({
  name: `sabre HashMap.add, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: UPDATE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) plainSmallMap.add(smallOrder[at + i], 1);
  },
});

Deno.bench({
  name: `sabre HashMap.compareAndSet of the value just read (x${BATCH})`,
  group: UPDATE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      smallMap.compareAndSet(k, smallMap.get(k)!, at + i);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.getOrInsert of a present key (x${BATCH})`,
  group: UPDATE_SMALL,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += smallMap.getOrInsert(smallOrder[at + i], 0);
    sink ^= s;
  },
});

const DELETE_SMALL = `delete and set again, i32 keys, ${SMALL} entries (in cache)`;

Deno.bench({
  name: `Map.delete, then Map.set (x${BATCH})`,
  group: DELETE_SMALL,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      jsSmallMap.delete(k);
      jsSmallMap.set(k, at + i);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.delete, then HashMap.set (x${BATCH})`,
  group: DELETE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      smallMap.delete(k);
      smallMap.set(k, at + i);
    }
  },
});

Deno.bench({
  name:
    `sabre HashMap.delete, then HashMap.set, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: DELETE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      plainSmallMap.delete(k);
      plainSmallMap.set(k, at + i);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.delete, then HashMap.getOrInsert (x${BATCH})`,
  group: DELETE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      smallMap.delete(k);
      smallMap.getOrInsert(k, at + i);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.deleteIf of the value just read, then HashMap.set (x${BATCH})`,
  group: DELETE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      smallMap.deleteIf(k, smallMap.get(k)!);
      smallMap.set(k, at + i);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.take, then HashMap.set (x${BATCH})`,
  group: DELETE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      sink ^= smallMap.take(k)!;
      smallMap.set(k, at + i);
    }
  },
});

Deno.bench({
  name:
    `sabre HashMap.take, then HashMap.set, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: DELETE_SMALL,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      sink ^= plainSmallMap.take(k)!;
      plainSmallMap.set(k, at + i);
    }
  },
});

// ------------------------------------------------------------ insertion

// Deletes of string values: one of over 64 bytes is shed (its entry replaced
// by a copy without the value, so that its bytes are reclaimed at once); a
// smaller one stays in the key's slot, and a map whose maxValueBytes is 64
// or less never sheds (nor pins to look).
const DELETE_STRING_VALUES =
  `delete and set again, i32 keys, string values, ${SMALL} entries (in cache)`;
const longValue = "v".repeat(200);
const shortValue = "v".repeat(40);
const longValueMap = HashMap.create(mainHeap, { key: "i32", value: "string" });
const shortValueMap = HashMap.create(mainHeap, { key: "i32", value: "string" });
const cappedValueMap = HashMap.create(mainHeap, { key: "i32", value: "string", maxValueBytes: 64 });
const jsLongValueMap = new Map<number, string>();
for (let k = 0; k < SMALL; k++) {
  longValueMap.set(k, longValue);
  shortValueMap.set(k, shortValue);
  cappedValueMap.set(k, shortValue);
  jsLongValueMap.set(k, longValue);
}

Deno.bench({
  name: `Map.delete, then Map.set, 200-byte values (x${BATCH})`,
  group: DELETE_STRING_VALUES,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = smallOrder[at + i];
      jsLongValueMap.delete(k);
      jsLongValueMap.set(k, longValue);
    }
  },
});

for (
  const [label, map, value] of [
    ["200-byte values (shed)", longValueMap, longValue],
    ["40-byte values", shortValueMap, shortValue],
    ["40-byte values, maxValueBytes 64", cappedValueMap, shortValue],
  ] as const
) {
  Deno.bench({
    name: `sabre HashMap.delete, then HashMap.set, ${label} (x${BATCH})`,
    group: DELETE_STRING_VALUES,
    fn() {
      const at = nextSmallBatch();
      for (let i = 0; i < BATCH; i++) {
        const k = smallOrder[at + i];
        map.delete(k);
        map.set(k, value);
      }
    },
  });
}

const INSERT = "insert 1M new i32 keys into an empty map";
const INSERT_ITERATIONS = { n: 5, warmup: 1 };

Deno.bench({
  name: `Map.set of new keys (x${N})`,
  group: INSERT,
  baseline: true,
  ...INSERT_ITERATIONS,
  fn(b) {
    const map = new Map<number, number>();
    b.start();
    for (let i = 0; i < N; i++) map.set(intKey(i), i);
    b.end();
    sink ^= map.size;
  },
});

for (const presized of [false, true]) {
  Deno.bench({
    name: `sabre HashMap.set of new keys, ${
      presized ? "created with capacity 2M (no growth)" : "growing from 16 slots"
    } (x${N})`,
    group: INSERT,
    ...INSERT_ITERATIONS,
    fn(b) {
      const map = HashMap.create(mainHeap, {
        key: "i32",
        value: "i32",
        capacity: presized ? 2 * N : undefined,
      });
      b.start();
      for (let i = 0; i < N; i++) map.set(intKey(i), i);
      b.end();
      sink ^= map.size;
      map.destroy();
      mainHeap.collect();
    },
  });
}

// ------------------------------------------------------------ 16-byte string keys

// Default options (maxKeyBytes 1024), and the same map with maxKeyBytes set
// to the keys' length, as a user who knows the keys might create it.
const stringMap = HashMap.create(mainHeap, { key: "string", value: "i32" });
const tightMap = HashMap.create(mainHeap, { key: "string", value: "i32", maxKeyBytes: 16 });
const jsStringMap = new Map<string, number>();
for (let i = 0; i < N; i++) {
  const key = stringKey(i);
  stringMap.set(key, i);
  tightMap.set(key, i);
  jsStringMap.set(key, i);
}
// Lookups use other string objects than the ones stored (as keys parsed or
// built elsewhere would be), and Map reads its own: a Map lookup makes V8
// internalize the string, which leaves it a forwarding ThinString, so a
// later reader of its characters takes one more hop (at 1M keys, a cache
// miss) that a program without that Map would not. Both sets are built the
// same way and used once before the benches (sabre's flatten then, as any
// concatenated string does on its first read).
const lookupKeys: string[] = [];
const mapLookupKeys: string[] = [];
for (let i = 0; i < N; i++) lookupKeys.push(stringKey(i));
for (let i = 0; i < N; i++) mapLookupKeys.push(stringKey(i));
for (let i = 0; i < N; i++) {
  const key = lookupKeys[i];
  if (
    stringMap.get(key) !== i || tightMap.get(key) !== i || jsStringMap.get(mapLookupKeys[i]) !== i
  ) {
    throw new Error(`lost key ${lookupKeys[i]}`);
  }
}

const GET_STRING = "get, 16-byte string keys, 1M entries";

Deno.bench({
  name: `Map.get (x${BATCH})`,
  group: GET_STRING,
  baseline: true,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += jsStringMap.get(mapLookupKeys[order[at + i]])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get (x${BATCH})`,
  group: GET_STRING,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += stringMap.get(lookupKeys[order[at + i]])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get, inside one heap.pin() per batch (x${BATCH})`,
  group: GET_STRING,
  fn() {
    const at = nextBatch();
    let s = 0;
    mainHeap.pin();
    for (let i = 0; i < BATCH; i++) s += stringMap.get(lookupKeys[order[at + i]])!;
    mainHeap.unpin();
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get, created with maxKeyBytes 16 (x${BATCH})`,
  group: GET_STRING,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += tightMap.get(lookupKeys[order[at + i]])!;
    sink ^= s;
  },
});

// The floor of any lookup that hashes the key itself: reading the 16
// characters of each key with charCodeAt, and nothing else (Map.get uses the
// hash V8 caches in the string object).
Deno.bench({
  name: `floor: read the key's characters, no lookup (x${BATCH})`,
  group: GET_STRING,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      const key = lookupKeys[order[at + i]];
      for (let c = 0; c < key.length; c++) s += key.charCodeAt(c);
    }
    sink ^= s;
  },
});

// What HashMap.get does before its lookup where the runtime has the string
// kernel (memory/_string_kernel.ts): one call into WebAssembly, which copies
// the key's characters with the js-string builtins, then encodes and hashes
// them.
Deno.bench({
  ignore: !hasStringKernel,
  name: `floor: read the key in WebAssembly (the string kernel's encodeKey), no lookup (x${BATCH})`,
  group: GET_STRING,
  fn() {
    const at = nextBatch();
    const strings = stringKernelForRead(mainHeap)!;
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += strings.encodeKey(lookupKeys[order[at + i]], 32);
    sink ^= s;
  },
});

// Reading one character of each key misses the cache as often, yet costs far
// less: with a loop this short, the next keys' misses overlap with this
// one's, which the 16-character loop leaves too little room for.
Deno.bench({
  name: `floor: read one character of the key, no lookup (x${BATCH})`,
  group: GET_STRING,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += lookupKeys[order[at + i]].charCodeAt(7);
    sink ^= s;
  },
});

// The same lookups with keys decoded from bytes, as keys read from a file, a
// socket or JSON are. Those are flat strings; the keys above are built by
// concatenation, and V8 keeps such a string as a pair whose first half points
// to its flattened characters, so every charCodeAt takes one more hop there.
// Map.get reads neither: it uses the hash that V8 caches in the string.
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const decodedKeys: string[] = [];
const mapDecodedKeys: string[] = [];
for (let i = 0; i < N; i++) decodedKeys.push(decoder.decode(encoder.encode(stringKey(i))));
for (let i = 0; i < N; i++) mapDecodedKeys.push(decoder.decode(encoder.encode(stringKey(i))));
for (let i = 0; i < N; i++) {
  if (stringMap.get(decodedKeys[i]) !== i || jsStringMap.get(mapDecodedKeys[i]) !== i) {
    throw new Error(`lost key ${decodedKeys[i]}`);
  }
}

const GET_DECODED_STRING = "get, 16-byte string keys decoded from bytes, 1M entries";
// The benches below repeat those of the group above with the other keys: a
// function shared by both key shapes would be polymorphic in them.

Deno.bench({
  name: `Map.get (x${BATCH})`,
  group: GET_DECODED_STRING,
  baseline: true,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += jsStringMap.get(mapDecodedKeys[order[at + i]])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get (x${BATCH})`,
  group: GET_DECODED_STRING,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += stringMap.get(decodedKeys[order[at + i]])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `floor: read the key's characters, no lookup (x${BATCH})`,
  group: GET_DECODED_STRING,
  fn() {
    const at = nextBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      const key = decodedKeys[order[at + i]];
      for (let c = 0; c < key.length; c++) s += key.charCodeAt(c);
    }
    sink ^= s;
  },
});

Deno.bench({
  ignore: !hasStringKernel,
  name: `floor: read the key in WebAssembly (the string kernel's encodeKey), no lookup (x${BATCH})`,
  group: GET_DECODED_STRING,
  fn() {
    const at = nextBatch();
    const strings = stringKernelForRead(mainHeap)!;
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += strings.encodeKey(decodedKeys[order[at + i]], 32);
    sink ^= s;
  },
});

// The same keys in maps that fit in the caches: the fixed cost of a string
// lookup, in the kernel and in JavaScript.
const smallStringMap = HashMap.create(mainHeap, { key: "string", value: "i32" });
const plainSmallStringMap = HashMap.create(heapWithKernel(false), { key: "string", value: "i32" });
const jsSmallStringMap = new Map<string, number>();
for (let i = 0; i < SMALL; i++) {
  smallStringMap.set(stringKey(i), i);
  plainSmallStringMap.set(stringKey(i), i);
  jsSmallStringMap.set(stringKey(i), i);
}
for (let i = 0; i < SMALL; i++) {
  const key = lookupKeys[i];
  if (smallStringMap.get(key) !== i || plainSmallStringMap.get(key) !== i) {
    throw new Error(`lost key ${key}`);
  }
}
const smallStringOrder = new Int32Array(1 << 16);
for (let i = 0; i < smallStringOrder.length; i++) {
  smallStringOrder[i] = Math.floor(random() * SMALL);
}

const GET_SMALL_STRING = `get, 16-byte string keys, ${SMALL} entries (in cache)`;

// One function each: a loop shared by the three maps would be polymorphic.
Deno.bench({
  name: `Map.get (x${BATCH})`,
  group: GET_SMALL_STRING,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      s += jsSmallStringMap.get(mapLookupKeys[smallStringOrder[at + i]])!;
    }
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get (x${BATCH})`,
  group: GET_SMALL_STRING,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += smallStringMap.get(lookupKeys[smallStringOrder[at + i]])!;
    sink ^= s;
  },
});

Deno.bench({
  name: `sabre HashMap.get, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: GET_SMALL_STRING,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      s += plainSmallStringMap.get(lookupKeys[smallStringOrder[at + i]])!;
    }
    sink ^= s;
  },
});

// What every string lookup pays before it reads the map: reading the key's
// characters, encoding them and hashing them (sabre's get does this in
// JavaScript, then looks the key up in the kernel).
const asciiWords = new Int32Array(16);
Deno.bench({
  name: `floor: encode and hash the key (encodeAsciiKey), no lookup (x${BATCH})`,
  group: GET_SMALL_STRING,
  fn() {
    const at = nextSmallBatch();
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      s += encodeAsciiKey(lookupKeys[smallStringOrder[at + i]], asciiWords, 64) ^ asciiWords[0];
    }
    sink ^= s;
  },
});

Deno.bench({
  ignore: !hasStringKernel,
  name: `floor: read the key in WebAssembly (the string kernel's encodeKey), no lookup (x${BATCH})`,
  group: GET_SMALL_STRING,
  fn() {
    const at = nextSmallBatch();
    const strings = stringKernelForRead(mainHeap)!;
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      s += strings.encodeKey(lookupKeys[smallStringOrder[at + i]], 32) ^
        kernelKeyWords(mainHeap)[0];
    }
    sink ^= s;
  },
});

const SET_SMALL_STRING = `set existing key, 16-byte string keys, ${SMALL} entries (in cache)`;

Deno.bench({
  name: `Map.set (x${BATCH})`,
  group: SET_SMALL_STRING,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      jsSmallStringMap.set(mapLookupKeys[smallStringOrder[at + i]], at + i);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.set (x${BATCH})`,
  group: SET_SMALL_STRING,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      smallStringMap.set(lookupKeys[smallStringOrder[at + i]], at + i);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.set, JavaScript path (heap without the kernel) (x${BATCH})`,
  group: SET_SMALL_STRING,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      plainSmallStringMap.set(lookupKeys[smallStringOrder[at + i]], at + i);
    }
  },
});

const UPDATE_SMALL_STRING =
  `add to existing keys, 16-byte string keys, ${SMALL} entries (in cache)`;

Deno.bench({
  name: `Map, get then set: a counter (x${BATCH})`,
  group: UPDATE_SMALL_STRING,
  baseline: true,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) {
      const k = mapLookupKeys[smallStringOrder[at + i]];
      jsSmallStringMap.set(k, jsSmallStringMap.get(k)! + 1);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.add (x${BATCH})`,
  group: UPDATE_SMALL_STRING,
  fn() {
    const at = nextSmallBatch();
    for (let i = 0; i < BATCH; i++) smallStringMap.add(lookupKeys[smallStringOrder[at + i]], 1);
  },
});

const SET_STRING = "set existing key, 16-byte string keys, 1M entries";

Deno.bench({
  name: `Map.set (x${BATCH})`,
  group: SET_STRING,
  baseline: true,
  fn() {
    const at = nextBatch();
    for (let i = 0; i < BATCH; i++) jsStringMap.set(mapLookupKeys[order[at + i]], at + i);
  },
});

Deno.bench({
  name: `sabre HashMap.set (x${BATCH})`,
  group: SET_STRING,
  fn() {
    const at = nextBatch();
    for (let i = 0; i < BATCH; i++) stringMap.set(lookupKeys[order[at + i]], at + i);
  },
});

// ------------------------------------------------------------ iteration

// Iteration over every entry of a map of SMALL keys, with the loop running
// straight through, and with an `await` after each entry: the iterator then
// gives up its epoch pin at each pause and takes it again at the next step
// (see HashMap.entries). The Map rows await the same way, so the ratio of
// the two await rows is what a pause costs sabre beyond the await itself.
const iteratedIntMap = HashMap.create(mainHeap, { key: "i32", value: "i32" });
const iteratedStringMap = HashMap.create(mainHeap, { key: "string", value: "i32" });
const jsIteratedIntMap = new Map<number, number>();
const jsIteratedStringMap = new Map<string, number>();
for (let i = 0; i < SMALL; i++) {
  iteratedIntMap.set(intKey(i), i);
  jsIteratedIntMap.set(intKey(i), i);
  iteratedStringMap.set(stringKey(i), i);
  jsIteratedStringMap.set(stringKey(i), i);
}

/** Sums the values of a full iteration, checking that it saw every entry. */
function sumEntries(entries: Iterable<[unknown, number]>): number {
  let s = 0;
  let n = 0;
  for (const [, value] of entries) {
    s += value;
    n++;
  }
  if (n !== SMALL) throw new Error(`iteration saw ${n} entries of ${SMALL}`);
  return s;
}

/** sumEntries with an `await` after each entry. */
async function sumEntriesPausing(entries: Iterable<[unknown, number]>): Promise<number> {
  let s = 0;
  let n = 0;
  for (const [, value] of entries) {
    s += value;
    n++;
    await null;
  }
  if (n !== SMALL) throw new Error(`iteration saw ${n} entries of ${SMALL}`);
  return s;
}

for (
  const [keys, sabreMap, jsMap] of [
    ["i32", iteratedIntMap, jsIteratedIntMap],
    ["16-byte string", iteratedStringMap, jsIteratedStringMap],
  ] as const
) {
  const group = `iterate all entries, ${keys} keys, ${SMALL} entries`;
  Deno.bench({
    name: `Map for...of (x${SMALL})`,
    group,
    baseline: true,
    fn() {
      sink ^= sumEntries(jsMap as Map<unknown, number>);
    },
  });
  Deno.bench({
    name: `sabre HashMap for...of (x${SMALL})`,
    group,
    fn() {
      sink ^= sumEntries(sabreMap as HashMap<unknown, number>);
    },
  });
  Deno.bench({
    name: `Map for...of, await after each entry (x${SMALL})`,
    group,
    async fn() {
      sink ^= await sumEntriesPausing(jsMap as Map<unknown, number>);
    },
  });
  Deno.bench({
    name: `sabre HashMap for...of, await after each entry (x${SMALL})`,
    group,
    async fn() {
      sink ^= await sumEntriesPausing(sabreMap as HashMap<unknown, number>);
    },
  });
}

// ====================================================================== 3. message passing

/** Keys of the message-passing benches (as in the concache benches). */
const MP_KEYS = KEYS;
/** Requests per iteration of the message-passing benches. */
export const MP_BATCH = 200;
const MP_ITERATIONS = { n: 200, warmup: 20 };

const server = new Worker(new URL("./_hashmap_workers.ts", import.meta.url), { type: "module" });
let pending: ((value: unknown) => void) | undefined;
let replies = 0;
let pipelineDone: (() => void) | undefined;
server.onmessage = (event: MessageEvent) => {
  if (pipelineDone !== undefined) {
    if (--replies === 0) pipelineDone();
    return;
  }
  const resolve = pending!;
  pending = undefined;
  resolve(event.data);
};
server.onerror = (event) => {
  throw new Error(`map server worker failed: ${event.message}`);
};
/** Sends one request and resolves with its reply. */
function request(message: MapRequest): Promise<unknown> {
  return new Promise((resolve) => {
    pending = resolve;
    server.postMessage(message);
  });
}
/** Sends `messages` without waiting, then resolves once every reply has come. */
function requestAll(messages: readonly MapRequest[]): Promise<void> {
  return new Promise((resolve) => {
    replies = messages.length;
    pipelineDone = () => {
      pipelineDone = undefined;
      resolve();
    };
    for (const message of messages) server.postMessage(message);
  });
}
await new Promise((resolve) => {
  pending = resolve;
  server.postMessage(MP_KEYS);
});
globalThis.addEventListener("beforeunload", () => server.terminate(), { once: true });

const mpMap = HashMap.create(mainHeap, { key: "i32", value: "i32" });
for (let k = 0; k < MP_KEYS; k++) mpMap.set(k, k);
const mpOrder = new Int32Array(1 << 16);
for (let i = 0; i < mpOrder.length; i++) mpOrder[i] = Math.floor(random() * MP_KEYS);
let mpCursor = 0;
function nextMpBatch(): number {
  if (mpCursor + MP_BATCH > mpOrder.length) mpCursor = 0;
  const at = mpCursor;
  mpCursor += MP_BATCH;
  return at;
}
const getRequests: MapRequest[][] = [];
for (let at = 0; at + MP_BATCH <= mpOrder.length; at += MP_BATCH) {
  getRequests.push(Array.from(mpOrder.subarray(at, at + MP_BATCH), (k) => [GET, k] as const));
}

const MP_GET = `get, ${MP_KEYS} i32 keys, Map in another worker vs sabre HashMap`;

Deno.bench({
  name: `postMessage get, one round trip at a time (x${MP_BATCH})`,
  group: MP_GET,
  baseline: true,
  ...MP_ITERATIONS,
  async fn() {
    const at = nextMpBatch();
    for (let i = 0; i < MP_BATCH; i++) {
      const k = mpOrder[at + i];
      if (await request([GET, k]) !== k) throw new Error(`map server lost key ${k}`);
    }
  },
});

Deno.bench({
  name: `postMessage get, the whole batch in flight (x${MP_BATCH})`,
  group: MP_GET,
  ...MP_ITERATIONS,
  async fn() {
    const at = nextMpBatch();
    await requestAll(getRequests[at / MP_BATCH]);
  },
});

Deno.bench({
  name: `sabre HashMap.get in this thread (x${MP_BATCH})`,
  group: MP_GET,
  fn() {
    const at = nextMpBatch();
    let s = 0;
    for (let i = 0; i < MP_BATCH; i++) s += mpMap.get(mpOrder[at + i])!;
    sink ^= s;
  },
});

const MP_SET = `set, ${MP_KEYS} i32 keys, Map in another worker vs sabre HashMap`;

Deno.bench({
  name: `postMessage set, one round trip at a time (x${MP_BATCH})`,
  group: MP_SET,
  baseline: true,
  ...MP_ITERATIONS,
  async fn() {
    const at = nextMpBatch();
    for (let i = 0; i < MP_BATCH; i++) {
      const k = mpOrder[at + i];
      await request([SET, k, k]);
    }
  },
});

Deno.bench({
  name: `sabre HashMap.set in this thread (x${MP_BATCH})`,
  group: MP_SET,
  fn() {
    const at = nextMpBatch();
    for (let i = 0; i < MP_BATCH; i++) mpMap.set(mpOrder[at + i], mpOrder[at + i]);
  },
});

// ====================================================================== 2. concache's shape

/**
 * Reads per measured reader, and writes per measured writer, in one batch:
 * enough that a batch of the fastest map lasts 10 ms or more, several
 * scheduler time slices. With more threads than cores, a reader descheduled
 * near the end of a short batch stretches it by a whole slice, which costs a
 * 1 ms batch far more than a 15 ms one. With 10,000 reads on a 2-core
 * machine, sabre's batches of 1–3 ms ranged over 0.8–19 ms, while
 * sharedmap's, ten times longer, absorbed the same stalls.
 */
export const READ_OPS = 100_000;
export const WRITE_OPS = 50_000;
const CONCACHE_ITERATIONS = { n: 8, warmup: 2 };

/** Fills the four maps of one configuration with keys 0 to KEYS - 1 (value = key). */
function concacheMaps(seed: number): ConcacheArgs {
  const sabreInt = HashMap.create(mainHeap, { key: "i32", value: "i32" });
  const sabreString = HashMap.create(mainHeap, { key: "string", value: "i32", maxKeyBytes: 16 });
  const lockedHandle = LockedTable.create(16384);
  const locked = new LockedTable(lockedHandle);
  // Key and value room in UTF-16 code units; sharedmap writes a terminator
  // after each, so give both more room than the longest (16 and 10 units).
  const sharedMap = new SharedMap(16384, 20, 12);
  for (let k = 0; k < KEYS; k++) {
    sabreInt.set(k, k);
    sabreString.set(stringKey(k), k);
    locked.set(k, k);
    sharedMap.set(stringKey(k), k);
  }
  return {
    sabreInt: sabreInt.handle,
    sabreString: sabreString.handle,
    locked: lockedHandle,
    sharedMap,
    seed,
  };
}

const writerCounts = workerCounts("SABRE_BENCH_WRITERS", [1]);
const readerCounts = workerCounts("SABRE_BENCH_READERS", [1, 3]);
for (const writers of writerCounts) {
  for (const readers of readerCounts) {
    const suite = await ContentionSuite.start({
      module: new URL("./_hashmap_workers.ts", import.meta.url),
      setup: "concacheScenarios",
      workers: writers + readers,
      args: concacheMaps(writers * 100 + readers),
    });
    const shape = `${writers} writer${writers === 1 ? "" : "s"} + ${readers} reader${
      readers === 1 ? "" : "s"
    }`;
    for (const distribution of ["uniform", "zipf"] as const) {
      const keys = `${KEYS} keys ${distribution === "zipf" ? "Zipf(1.03)" : "uniform"}`;
      for (const map of CONCACHE_MAPS) {
        suite.bench({
          name: `${map}: reads beside ${shape}`,
          group: `concache reads, ${shape}, ${keys}`,
          baseline: map === "sharedmap",
          scenario: concacheScenario(map, distribution, "reads"),
          ops: READ_OPS,
          measured: readers,
          ...CONCACHE_ITERATIONS,
        });
      }
      for (const map of CONCACHE_MAPS) {
        suite.bench({
          name: `${map}: writes beside ${shape}`,
          group: `concache writes, ${shape}, ${keys}`,
          baseline: map === "sharedmap",
          scenario: concacheScenario(map, distribution, "writes"),
          ops: WRITE_OPS,
          measured: writers,
          ...CONCACHE_ITERATIONS,
        });
      }
    }
  }
}

// ====================================================================== 4. contended add

/** Adds per worker in one batch. */
export const ADD_OPS = 50_000;

const adderCounts = workerCounts("SABRE_BENCH_ADDERS", [2, 4]);
for (const adders of adderCounts) {
  const suite = await ContentionSuite.start({
    module: new URL("./_hashmap_workers.ts", import.meta.url),
    setup: "counterScenarios",
    workers: adders,
    args: {
      sabreInt: HashMap.create(mainHeap, { key: "i32", value: "i32" }).handle,
      sabreString: HashMap.create(mainHeap, { key: "string", value: "i32", maxKeyBytes: 16 })
        .handle,
      locked: LockedTable.create(16384),
      array: new SharedArrayBuffer(KEYS * 4),
      seed: 300 + adders,
    } satisfies CounterArgs,
  });
  for (const keySet of COUNTER_KEY_SETS) {
    for (const map of COUNTER_MAPS) {
      suite.bench({
        name: `${map}: add, ${adders} workers`,
        group: `contended add, ${adders} workers, ${keySet}`,
        baseline: map === "RwLock table",
        scenario: counterScenario(map, keySet),
        ops: ADD_OPS,
        measured: adders,
        ...CONCACHE_ITERATIONS,
      });
    }
  }
}

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
