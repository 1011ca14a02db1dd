/**
 * Worker side of the BPlusTree contention benches (`btree_bench.ts`).
 *
 * - `lookups`: random lookups of present keys. A measured worker runs
 *   `batch.ops` of them; a background worker does nothing, so the same
 *   suite measures 1 worker (1 measured) and 2 workers (2 measured).
 * - `mixed, sabre latches` and `mixed, one RwLock`: 90% lookups, 10%
 *   writes (a worker's writes alternate between inserting a new key of its
 *   own and deleting it again, so the tree keeps its size and its leaves
 *   split and merge). The first runs on the tree's own latching; the second
 *   runs the same operations on the same tree under one global sabre
 *   RwLock, read mode for lookups and write mode for writes: what a user
 *   would do to share a single-threaded structure.
 *
 * @module
 */

import { BPlusTree, type BPlusTreeHandle } from "../btree/mod.ts";
import { RwLock, type RwLockHandle } from "../latch/mod.ts";
import type { Batch, Scenarios } from "./_contention.ts";
import { seededRandom } from "../testing/harness.ts";

/** Keys in the tree: 2i for i in 0 .. N - 1; odd keys are free for inserts. */
export const TREE_KEYS = 1_000_000;
/** Length of each worker's precomputed key sequence (a power of two). */
const SEQUENCE_LENGTH = 1 << 16;
const SEQUENCE_MASK = SEQUENCE_LENGTH - 1;

export interface BtreeBenchArgs {
  readonly tree: BPlusTreeHandle;
  readonly lock: RwLockHandle;
  readonly seed: number;
}

export function btreeScenarios(args: BtreeBenchArgs, ctx: { index: number }): Scenarios {
  const tree = BPlusTree.attach<number, number>(args.tree);
  const lock = RwLock.attach(args.lock);
  const random = seededRandom(args.seed + ctx.index * 7919);
  const present = new Int32Array(SEQUENCE_LENGTH);
  for (let i = 0; i < SEQUENCE_LENGTH; i++) present[i] = 2 * Math.floor(random() * TREE_KEYS);
  // 1 in 10 operations writes; which ones is precomputed too.
  const writes = new Uint8Array(SEQUENCE_LENGTH);
  for (let i = 0; i < SEQUENCE_LENGTH; i++) writes[i] = random() < 0.1 ? 1 : 0;
  // Own odd keys: 2 * (j * 2 + index) + 1 for the index-th worker (2 workers at most here, 8 room).
  const ownKey = (j: number) => 2 * (j * 8 + ctx.index) + 1;
  let cursor = ctx.index * 4099;
  let inserted = -1; // j of the own key inserted last, -1 when none is present
  let nextOwn = 0;
  let sink = 0;

  const lookups = (batch: Batch) => {
    const ops = batch.ops;
    let c = cursor;
    let s = 0;
    for (let i = 0; i < ops; i++) {
      const k = present[c++ & SEQUENCE_MASK];
      const v = tree.get(k);
      if (v === undefined) throw new Error(`lookup lost key ${k}`);
      s += v;
    }
    cursor = c;
    sink ^= s;
  };

  const write = () => {
    if (inserted < 0) {
      inserted = nextOwn++ % (TREE_KEYS / 8);
      tree.set(ownKey(inserted), inserted);
    } else {
      tree.delete(ownKey(inserted));
      inserted = -1;
    }
  };

  const mixedLatches = (batch: Batch) => {
    const ops = batch.ops;
    let c = cursor;
    let s = 0;
    for (let i = 0; i < ops; i++) {
      const at = c++ & SEQUENCE_MASK;
      if (writes[at] === 1) write();
      else s += tree.get(present[at])!;
    }
    cursor = c;
    sink ^= s;
  };

  const mixedLocked = (batch: Batch) => {
    const ops = batch.ops;
    let c = cursor;
    let s = 0;
    for (let i = 0; i < ops; i++) {
      const at = c++ & SEQUENCE_MASK;
      if (writes[at] === 1) {
        lock.acquireWrite();
        try {
          write();
        } finally {
          lock.releaseWrite();
        }
      } else {
        lock.acquireRead();
        try {
          s += tree.get(present[at])!;
        } finally {
          lock.releaseRead();
        }
      }
    }
    cursor = c;
    sink ^= s;
  };

  globalThis.addEventListener("unload", () => {
    if (sink === 0.5) console.log(sink);
  });
  return {
    lookups: (batch) => {
      if (batch.measured) lookups(batch);
    },
    "mixed, sabre latches": (batch) => {
      if (batch.measured) mixedLatches(batch);
    },
    "mixed, one RwLock": (batch) => {
      if (batch.measured) mixedLocked(batch);
    },
  };
}
