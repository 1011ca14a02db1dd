/**
 * Shared by the tests of `destroy()` in hashmap/ and btree/: the heap's use
 * once reclamation has settled, and key/value samples for several codec
 * pairs. For tests only.
 *
 * @module
 */

import type { CodecName, SharedHeap } from "../memory/mod.ts";

/** Live blocks and bytes after four `collect()` calls. */
export function settledUse(heap: SharedHeap): { blocks: number; bytes: number } {
  for (let i = 0; i < 4; i++) heap.collect();
  const { liveBlocks, liveBytes } = heap.stats();
  return { blocks: liveBlocks, bytes: liveBytes };
}

/** A codec pair and the i-th key and value of a sample for it. */
export interface DestroySample {
  readonly name: string;
  readonly options: { readonly key: CodecName; readonly value: CodecName };
  readonly key: (i: number) => unknown;
  readonly value: (i: number) => unknown;
}

/** Fixed-size, variable-size (with non-ASCII keys) and mixed codec pairs. */
export const DESTROY_SAMPLES: readonly DestroySample[] = [
  {
    name: "i32 -> i32",
    options: { key: "i32", value: "i32" },
    key: (i) => i * 3,
    value: (i) => -i,
  },
  {
    name: "string -> string",
    options: { key: "string", value: "string" },
    key: (i) => (i % 2 === 0 ? `k${i}` : `ключ ${i}`),
    value: (i) => "v".repeat(i % 40),
  },
  {
    name: "f64 -> bytes",
    options: { key: "f64", value: "bytes" },
    key: (i) => i + 0.5,
    value: (i) => new Uint8Array(i % 9),
  },
];
