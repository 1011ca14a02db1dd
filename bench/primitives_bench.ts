/**
 * The physical limits every other sabre figure is read against: plain reads
 * against Atomics, fixed views against length-tracking views of a growable
 * buffer, and the heap's own allocate+free and pin+unpin.
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

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
