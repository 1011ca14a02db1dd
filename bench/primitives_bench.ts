/**
 * The physical limits every other sabre figure is read against: plain reads
 * against Atomics, fixed views against length-tracking views of a growable
 * buffer, the heap's own allocate+free and pin+unpin, and what one
 * Atomics.load per lookup costs in memory-level parallelism when every
 * lookup misses the cache.
 *
 * Every bench runs a batch of BATCH operations per iteration, so divide the
 * reported time by BATCH for ns/op (`deno task bench:report` does). Ratios
 * against each group's baseline are per operation already.
 *
 * Run: `deno task bench bench/primitives_bench.ts`
 *
 * @module
 */

import { SharedHeap } from "../memory/mod.ts";

export const BATCH = 1000;
const WORDS = 1 << 14;
const MASK = WORDS - 1;

const fixedSab = new SharedArrayBuffer(WORDS * 4);
const fixed = new Int32Array(fixedSab);
const growableSab = new SharedArrayBuffer(WORDS * 4, { maxByteLength: WORDS * 16 });
const tracking = new Int32Array(growableSab); // length-tracking: no length given
const growableFixed = new Int32Array(growableSab, 0, WORDS);
for (let i = 0; i < WORDS; i++) fixed[i] = tracking[i] = i;

let sink = 0;
// Stride through the array so reads are not folded into one.
const STRIDE = 97;

Deno.bench({
  name: `plain Int32Array read, fixed view (x${BATCH})`,
  group: "read",
  baseline: true,
  fn() {
    let s = 0;
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) s += fixed[j];
    sink ^= s;
  },
});

Deno.bench({
  name: `plain Int32Array read, fixed view of a growable buffer (x${BATCH})`,
  group: "read",
  fn() {
    let s = 0;
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) s += growableFixed[j];
    sink ^= s;
  },
});

Deno.bench({
  name: `plain read, length-tracking view of a growable buffer (x${BATCH})`,
  group: "read",
  fn() {
    let s = 0;
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) s += tracking[j];
    sink ^= s;
  },
});

Deno.bench({
  name: `Atomics.load Int32, fixed view (x${BATCH})`,
  group: "read",
  fn() {
    let s = 0;
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) s += Atomics.load(fixed, j);
    sink ^= s;
  },
});

Deno.bench({
  name: `Atomics.load Int32, length-tracking view (x${BATCH})`,
  group: "read",
  fn() {
    let s = 0;
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) {
      s += Atomics.load(tracking, j);
    }
    sink ^= s;
  },
});

Deno.bench({
  name: `Atomics.compareExchange Int32 (x${BATCH})`,
  group: "write",
  baseline: true,
  fn() {
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) {
      Atomics.compareExchange(fixed, j, j, j);
    }
  },
});

Deno.bench({
  name: `Atomics.store Int32 (x${BATCH})`,
  group: "write",
  fn() {
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) Atomics.store(fixed, j, j);
  },
});

Deno.bench({
  name: `plain Int32Array write (x${BATCH})`,
  group: "write",
  fn() {
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) fixed[j] = j;
  },
});

Deno.bench({
  name: `Atomics.add Int32 (x${BATCH})`,
  group: "write",
  fn() {
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) Atomics.add(fixed, j, 0);
  },
});

const heap = SharedHeap.create({ maxBytes: 64 << 20 });

Deno.bench({
  name: `Atomics.compareExchange Int32, heap group (x${BATCH})`,
  group: "heap",
  baseline: true,
  fn() {
    for (let i = 0, j = 0; i < BATCH; i++, j = (j + STRIDE) & MASK) {
      Atomics.compareExchange(fixed, j, j, j);
    }
  },
});

Deno.bench({
  name: `SharedHeap allocate+free 64 B (x${BATCH})`,
  group: "heap",
  fn() {
    for (let i = 0; i < BATCH; i++) heap.free(heap.allocate(64));
  },
});

const held = new Int32Array(BATCH);
Deno.bench({
  name: `SharedHeap ${BATCH} x allocate 64 B, then ${BATCH} x free (x${BATCH})`,
  group: "heap",
  fn() {
    for (let i = 0; i < BATCH; i++) held[i] = heap.allocate(64);
    for (let i = 0; i < BATCH; i++) heap.free(held[i]);
  },
});

Deno.bench({
  name: `SharedHeap pin+unpin (x${BATCH})`,
  group: "heap",
  fn() {
    for (let i = 0; i < BATCH; i++) heap.pin().unpin();
  },
});

Deno.bench({
  name: `SharedHeap pin+unpin with using (x${BATCH})`,
  group: "heap",
  fn() {
    for (let i = 0; i < BATCH; i++) {
      using _guard = heap.pin();
    }
  },
});

const map = new Map<number, number>();
for (let i = 0; i < 100_000; i++) map.set(i * 7, i);
Deno.bench({
  name: `Map.get, 100k int keys (x${BATCH})`,
  group: "map",
  baseline: true,
  fn() {
    let s = 0;
    for (let i = 0, k = 0; i < BATCH; i++, k = (k + 7 * 7919) % 700_000) s += map.get(k) ?? 0;
    sink ^= s;
  },
});

// ---------------------------------------------------------------- memory-level parallelism
// Dependent pairs of loads at random places in 64 MiB (a slot, then the
// 16-byte entry it points at), as a hash table lookup does. Plain loads let
// the CPU overlap the cache misses of successive lookups; an Atomics.load is
// a call into a V8 builtin (not inlined), and the longer instruction stream
// leaves fewer lookups in flight, so each miss costs more.

const TABLE_SLOTS = 1 << 21;
const ENTRY_WORDS = 4;
const ENTRIES = 1 << 20;
const tableSab = new SharedArrayBuffer((TABLE_SLOTS + ENTRIES * ENTRY_WORDS) * 4);
const table = new Int32Array(tableSab);
{
  // Entry e lives at word TABLE_SLOTS + e * 4; slots point at entries in random order.
  let seed = 12345;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let e = 0; e < ENTRIES; e++) {
    const at = TABLE_SLOTS + e * ENTRY_WORDS;
    table[at] = e;
    let slot = Math.floor(random() * TABLE_SLOTS);
    while (table[slot] !== 0) slot = (slot + 1) & (TABLE_SLOTS - 1);
    table[slot] = at;
  }
}
let probe = 1;
const nextProbe = () =>
  (probe = (Math.imul(probe, 1664525) + 1013904223) >>> 0) & (TABLE_SLOTS - 1);

Deno.bench({
  name: `slot then entry, plain loads, 64 MiB (x${BATCH})`,
  group: "random dependent loads",
  baseline: true,
  fn() {
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      const at = table[nextProbe()];
      if (at !== 0) s += table[at];
    }
    sink ^= s;
  },
});

Deno.bench({
  name: `slot then entry, Atomics.load of the slot, 64 MiB (x${BATCH})`,
  group: "random dependent loads",
  fn() {
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      const at = Atomics.load(table, nextProbe());
      if (at !== 0) s += table[at];
    }
    sink ^= s;
  },
});

const bigMap = new Map<number, number>();
for (let e = 0; e < ENTRIES; e++) bigMap.set(e * 7, e);
Deno.bench({
  name: `Map.get, 1M int keys, random (x${BATCH})`,
  group: "random dependent loads",
  fn() {
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += bigMap.get((nextProbe() & (ENTRIES - 1)) * 7) ?? 0;
    sink ^= s;
  },
});

// ------------------------------------------------------- inline int table
// The fastest read an int -> int hash table can have under the memory-model
// rule: 1M keys inline in a 2M-slot open-addressing table, `[key, value]`
// words read with Atomics.load (pattern (a), so no entry pointer to chase
// and nothing to pin). Variants add what a real table built this way would
// need: a table sequence word read before and after (a reader holding a
// recycled table must notice), and a heap.pin()/unpin() pair per lookup
// (what reclaiming through epochs costs). Against Map.get over the same keys.
// The spread between runs is wide (JIT and placement); compare ratios within
// one run.

const INLINE_KEYS = 1 << 20;
const INLINE_SLOTS = 1 << 21;
const INLINE_EMPTY = 0; // key words hold key ^ INLINE_FLIP, so 0 is free
const INLINE_FLIP = 0x80000000 | 0;
const inlineWords = new Int32Array(new SharedArrayBuffer(64 + INLINE_SLOTS * 8));
const INLINE_SEQ = 0;
const INLINE_BASE = 16;
const inlineKeys = new Int32Array(INLINE_KEYS);
const inlineMap = new Map<number, number>();
function inlineHash(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return x ^ (x >>> 16);
}
for (let i = 0; i < INLINE_KEYS; i++) {
  const key = i * 7; // small integers, as in hashmap_bench.ts
  inlineKeys[i] = key;
  inlineMap.set(key, i);
  let slot = inlineHash(key) & (INLINE_SLOTS - 1);
  while (inlineWords[INLINE_BASE + 2 * slot] !== INLINE_EMPTY) {
    slot = (slot + 1) & (INLINE_SLOTS - 1);
  }
  inlineWords[INLINE_BASE + 2 * slot] = key ^ INLINE_FLIP;
  inlineWords[INLINE_BASE + 2 * slot + 1] = i;
}
let inlineAt = 1;
const nextInlineKey = () =>
  inlineKeys[(inlineAt = (Math.imul(inlineAt, 1664525) + 1013904223) >>> 0) & (INLINE_KEYS - 1)];

/** Value of `key` in the inline table, -1 when absent. */
function inlineGet(key: number): number {
  const keyWord = key ^ INLINE_FLIP;
  for (let slot = inlineHash(key) & (INLINE_SLOTS - 1);; slot = (slot + 1) & (INLINE_SLOTS - 1)) {
    const at = INLINE_BASE + 2 * slot;
    const word = Atomics.load(inlineWords, at);
    if (word === keyWord) return Atomics.load(inlineWords, at + 1);
    if (word === INLINE_EMPTY) return -1;
  }
}

Deno.bench({
  name: `Map.get, 1M i32 keys (x${BATCH})`,
  group: "inline int table",
  baseline: true,
  fn() {
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += inlineMap.get(nextInlineKey())!;
    sink ^= s;
  },
});

Deno.bench({
  name: `inline slots, Atomics.load of key and value (x${BATCH})`,
  group: "inline int table",
  fn() {
    let s = 0;
    for (let i = 0; i < BATCH; i++) s += inlineGet(nextInlineKey());
    sink ^= s;
  },
});

Deno.bench({
  name: `inline slots, plus a table sequence check (x${BATCH})`,
  group: "inline int table",
  fn() {
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      const seq = Atomics.load(inlineWords, INLINE_SEQ);
      const value = inlineGet(nextInlineKey());
      if (Atomics.load(inlineWords, INLINE_SEQ) === seq) s += value;
    }
    sink ^= s;
  },
});

Deno.bench({
  name: `inline slots, plus heap.pin()/unpin() per lookup (x${BATCH})`,
  group: "inline int table",
  fn() {
    let s = 0;
    for (let i = 0; i < BATCH; i++) {
      heap.pin();
      s += inlineGet(nextInlineKey());
      heap.unpin();
    }
    sink ^= s;
  },
});

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
