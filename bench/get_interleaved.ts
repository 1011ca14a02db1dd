/**
 * `HashMap.get` against `Map.get`, interleaved: each round times a run of
 * batches of `Map.get`, then the same batches of `HashMap.get`, for each
 * case below, every run in a task of its own (as a bench iteration is), and
 * the script prints the median ratio over the rounds. On a small, busy
 * machine one `deno bench` run swings by tens of percent from the next;
 * ratios taken round by round, one measurement right after the other, are
 * far steadier, which is what comparing two versions of the code needs.
 *
 * Run with: `deno run --allow-read --allow-env bench/get_interleaved.ts`
 * (`SABRE_STRING_KERNEL=0` in the environment: without the string kernel)
 *
 * @module
 */

import { HashMap, SharedHeap } from "../mod.ts";
import { setStringKernelEnabled } from "../memory/_string_kernel.ts";

const ENTRIES = 1_000_000;
const IN_CACHE = 10_000;
const BATCH = 1000;
const BATCHES_PER_RUN = 50;
const ROUNDS = 60;
const WARMUP_ROUNDS = 10;
const ORDER_LENGTH = 1 << 20;

let seed = 20240601;
function random(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}
const order = new Int32Array(ORDER_LENGTH);
for (let i = 0; i < ORDER_LENGTH; i++) order[i] = Math.floor(random() * ENTRIES);

const intKey = (i: number) => i * 7;
/** 16-byte string keys, built by concatenation as in hashmap_bench.ts. */
const stringKey = (i: number) => `key-${i.toString().padStart(12, "0")}`;

// Every map in one heap, as the README advises: once a worker has read maps
// of two heaps, its gets over 1M keys take longer, most likely as its kernel
// calls meet two heaps' functions (see ARCHITECTURE.md, "Performance
// ceilings").
// SABRE_STRING_KERNEL=0: string gets with keys encoded in JavaScript, as
// where the runtime lacks the string kernel (memory/_string_kernel.ts). The
// two are compared in separate processes (see above for why not in one).
if (Deno.env.get("SABRE_STRING_KERNEL") === "0") setStringKernelEnabled(false);
const heap = SharedHeap.create({ maxBytes: 1 << 30 });

/** A sabre map and a Map with the same keys 0..n-1 (value = index). */
function intMaps(n: number) {
  const sabre = HashMap.create(heap, { key: "i32", value: "i32" });
  const js = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    sabre.set(intKey(i), i);
    js.set(intKey(i), i);
  }
  return { sabre, js };
}

/**
 * The keys of stringMaps: built by concatenation (V8 then keeps each as a
 * pair that points to its flattened characters), or decoded from bytes, as
 * keys read from a file, a socket or JSON are (flat strings).
 */
type KeyShape = "concatenated" | "decoded";

function stringMaps(n: number, shape: KeyShape) {
  const sabre = HashMap.create(heap, { key: "string", value: "i32" });
  const js = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    sabre.set(stringKey(i), i);
    js.set(stringKey(i), i);
  }
  // Lookups use other string objects than the stored ones, and Map and
  // sabre each their own (see hashmap_bench.ts, 16-byte string keys).
  const keys = (): string[] => {
    const made: string[] = [];
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    for (let i = 0; i < n; i++) {
      made.push(shape === "decoded" ? decoder.decode(encoder.encode(stringKey(i))) : stringKey(i));
    }
    return made;
  };
  const sabreKeys = keys();
  const jsKeys = keys();
  for (let i = 0; i < n; i++) sabre.get(sabreKeys[i]) ?? js.get(jsKeys[i]);
  return { sabre, js, sabreKeys, jsKeys };
}

let cursor = 0;
let sink = 0;

/** Milliseconds for BATCHES_PER_RUN batches of `batch`. */
function time(batch: (at: number) => number): number {
  const start = performance.now();
  for (let r = 0; r < BATCHES_PER_RUN; r++) {
    if (cursor + BATCH > ORDER_LENGTH) cursor = 0;
    sink ^= batch(cursor);
    cursor += BATCH;
  }
  return performance.now() - start;
}

const big = intMaps(ENTRIES);
const small = intMaps(IN_CACHE);
const bigStrings = stringMaps(ENTRIES, "concatenated");
const bigDecodedStrings = stringMaps(ENTRIES, "decoded");
const smallStrings = stringMaps(IN_CACHE, "concatenated");

/** The Map batch of both cases over `big`. */
const bigMapBatch = (at: number) => {
  let s = 0;
  for (let i = 0; i < BATCH; i++) s += big.js.get(intKey(order[at + i]))!;
  return s;
};

/**
 * Each case: a Map batch, then the sabre batch timed against it. Every batch
 * is a function of its own, even where two differ only in their map or
 * keys: a loop shared by several maps or key shapes would be polymorphic,
 * and would time that instead.
 */
const cases: [string, (at: number) => number, (at: number) => number][] = [
  [
    `${ENTRIES} i32 keys`,
    bigMapBatch,
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) s += big.sabre.get(intKey(order[at + i]))!;
      return s;
    },
  ],
  [
    `${ENTRIES} i32 keys, inside one heap.pin() per batch`,
    bigMapBatch,
    (at) => {
      let s = 0;
      heap.pin();
      for (let i = 0; i < BATCH; i++) s += big.sabre.get(intKey(order[at + i]))!;
      heap.unpin();
      return s;
    },
  ],
  [
    `${IN_CACHE} i32 keys (in cache)`,
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) s += small.js.get(intKey(order[at + i] % IN_CACHE))!;
      return s;
    },
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) s += small.sabre.get(intKey(order[at + i] % IN_CACHE))!;
      return s;
    },
  ],
  [
    `${ENTRIES} 16-byte string keys`,
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) s += bigStrings.js.get(bigStrings.jsKeys[order[at + i]])!;
      return s;
    },
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) {
        s += bigStrings.sabre.get(bigStrings.sabreKeys[order[at + i]])!;
      }
      return s;
    },
  ],
  [
    `${ENTRIES} 16-byte string keys decoded from bytes`,
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) {
        s += bigDecodedStrings.js.get(bigDecodedStrings.jsKeys[order[at + i]])!;
      }
      return s;
    },
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) {
        s += bigDecodedStrings.sabre.get(bigDecodedStrings.sabreKeys[order[at + i]])!;
      }
      return s;
    },
  ],
  [
    `${IN_CACHE} 16-byte string keys (in cache)`,
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) {
        s += smallStrings.js.get(smallStrings.jsKeys[order[at + i] % IN_CACHE])!;
      }
      return s;
    },
    (at) => {
      let s = 0;
      for (let i = 0; i < BATCH; i++) {
        s += smallStrings.sabre.get(smallStrings.sabreKeys[order[at + i] % IN_CACHE])!;
      }
      return s;
    },
  ],
];

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));
const ratios = cases.map(() => [] as number[]);
for (let round = 0; round < ROUNDS; round++) {
  for (let c = 0; c < cases.length; c++) {
    const map = time(cases[c][1]);
    await nextTask();
    const sabre = time(cases[c][2]);
    await nextTask();
    if (round >= WARMUP_ROUNDS) ratios[c].push(sabre / map);
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
console.log(`HashMap.get / Map.get, median of ${ROUNDS - WARMUP_ROUNDS} rounds:`);
for (let c = 0; c < cases.length; c++) {
  console.log(`  ${cases[c][0]}: ${median(ratios[c]).toFixed(2)}`);
}
if (sink === 0.5) console.log(sink);
