/**
 * Sequence locks: {@linkcode SeqLock}, and {@linkcode SeqCell}, a typed
 * record that many workers read as consistent snapshots while writers
 * publish new values.
 *
 * Readers never block writers and write nothing to shared memory, except a
 * count of parked readers when they must wait for a write in progress; a
 * reader retries when a write overlapped its read. All protected data is read and
 * written with Atomics (see the SeqLock module doc for why plain reads are
 * not enough in JavaScript, even with the sequence re-check).
 *
 * @example
 * ```ts
 * import { SeqCell } from "@sabre/sabre/seqlock";
 *
 * const config = SeqCell.create({ limit: "u32", ratio: "f64" });
 * config.write({ limit: 100, ratio: 0.75 });
 * const { limit, ratio } = config.read(); // a consistent pair
 * console.assert(limit === 100 && ratio === 0.75);
 * ```
 *
 * @module
 */

export { SeqLock, type SeqLockHandle, SeqLockWriteGuard } from "./seqlock.ts";
export {
  SeqCell,
  type SeqCellFieldType,
  type SeqCellHandle,
  type SeqCellOptions,
  type SeqCellRecord,
  type SeqCellSchema,
} from "./seq_cell.ts";
