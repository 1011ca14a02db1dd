/**
 * Catches a block retired twice. Every worker that installs the audit on its
 * heap has `allocate` and `retire` wrapped: a shared bitmap, one bit per
 * 8 bytes of heap, marks each block from its retire until it is handed out
 * again. A retire that finds its bit already set is a double retire (the
 * block would be freed twice); the audit counts it and keeps the pointer.
 * `allocateZeroed` goes through `allocate`, so it is covered too.
 *
 * For tests only: the wrappers cost an Atomics RMW per allocation and per
 * retire.
 *
 * @module
 */

import type { SharedHeap } from "../memory/mod.ts";

/** The audit's shared words; pass it to workers in their arguments. */
export interface RetireAudit {
  /** One bit per 8 bytes of the heap's maxBytes. */
  readonly bits: SharedArrayBuffer;
  /** Int32 words: [0] double retires seen, [1] the last such pointer. */
  readonly report: SharedArrayBuffer;
}

/**
 * A fresh audit for `heap`.
 *
 * @example
 * ```ts
 * import { SharedHeap } from "../memory/mod.ts";
 * import { createRetireAudit, doubleRetires } from "./retire_audit.ts";
 * const audit = createRetireAudit(SharedHeap.create({ maxBytes: 1 << 20 }));
 * console.assert(doubleRetires(audit).count === 0);
 * ```
 */
export function createRetireAudit(heap: SharedHeap): RetireAudit {
  return {
    bits: new SharedArrayBuffer(Math.ceil(heap.maxBytes / 8 / 32) * 4),
    report: new SharedArrayBuffer(8),
  };
}

/**
 * Wraps this worker's `heap.allocate` and `heap.retire` to keep `audit`.
 * Install it in every worker that allocates or retires in the heap, before
 * it does.
 *
 * @example
 * ```ts
 * import { SharedHeap } from "../memory/mod.ts";
 * import { createRetireAudit, doubleRetires, installRetireAudit } from "./retire_audit.ts";
 * const heap = SharedHeap.create({ maxBytes: 1 << 20 });
 * const audit = createRetireAudit(heap);
 * installRetireAudit(heap, audit);
 * heap.retire(heap.allocate(16));
 * console.assert(doubleRetires(audit).count === 0);
 * ```
 */
export function installRetireAudit(heap: SharedHeap, audit: RetireAudit): void {
  const bits = new Int32Array(audit.bits);
  const report = new Int32Array(audit.report);
  const allocate = heap.allocate.bind(heap);
  const retire = heap.retire.bind(heap);
  heap.allocate = (size: number): number => {
    const ptr = allocate(size);
    const bit = ptr >>> 3;
    Atomics.and(bits, bit >>> 5, ~(1 << (bit & 31)));
    return ptr;
  };
  heap.retire = (ptr: number): void => {
    const bit = ptr >>> 3;
    const mask = 1 << (bit & 31);
    if ((Atomics.or(bits, bit >>> 5, mask) & mask) !== 0) {
      Atomics.add(report, 0, 1);
      Atomics.store(report, 1, ptr);
    }
    retire(ptr);
  };
}

/**
 * What `audit` saw: how many double retires, and the last pointer retired
 * twice (0 when none).
 *
 * @example
 * ```ts
 * import { SharedHeap } from "../memory/mod.ts";
 * import { createRetireAudit, doubleRetires } from "./retire_audit.ts";
 * const audit = createRetireAudit(SharedHeap.create({ maxBytes: 1 << 20 }));
 * console.assert(doubleRetires(audit).pointer === 0);
 * ```
 */
export function doubleRetires(audit: RetireAudit): { count: number; pointer: number } {
  const report = new Int32Array(audit.report);
  return { count: Atomics.load(report, 0), pointer: Atomics.load(report, 1) };
}
