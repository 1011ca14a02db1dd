/**
 * A concurrent B+ tree in shared memory: {@linkcode BPlusTree}, an ordered
 * map that every worker attached to its handle reads and writes at once.
 *
 * Lookups and scans read copy-on-write node snapshots and never wait;
 * writers use optimistic lock coupling with a latch per node
 * (`LatchWords`, the HybridLatch protocol) and split and merge nodes online.
 * Keys are i32, u32, f64, bigint64, string (ordered by UTF-8 bytes, which is
 * code point order) or bytes; values use the same codecs.
 *
 * @example
 * ```ts
 * import { BPlusTree } from "@sabre/sabre/btree";
 * import { SharedHeap } from "@sabre/sabre/memory";
 *
 * const tree = BPlusTree.create<number, string>(SharedHeap.create(), { key: "i32", value: "string" });
 * tree.set(3, "c");
 * tree.set(1, "a");
 * tree.set(2, "b");
 * console.assert([...tree.range({ gte: 2 })].map(([, v]) => v).join() === "b,c");
 * ```
 *
 * @module
 */

export {
  BPlusTree,
  type BPlusTreeHandle,
  type BPlusTreeOptions,
  type RangeOptions,
} from "./btree.ts";
export { Cursor, ExclusiveCursor } from "./cursor.ts";
