/**
 * Transactional data structures built only on the public API of `stm/`
 * (Loc, Xt, Retry), in the style of kcas_data. They hold numbers; each has
 * a handle to share it with other workers, blocking forms (sync, async,
 * with `timeoutMs`), non-blocking `try…` forms, and `xt…` forms that
 * compose into larger transactions: take from one queue and put into an
 * Mvar, atomically, or wait until both are possible.
 *
 * - {@linkcode Mvar}: a synchronizing variable (empty or full).
 * - {@linkcode StmPromise}: a write-once value to await (kcas_data's Promise).
 * - {@linkcode Accumulator}: a sharded counter.
 * - {@linkcode Queue}: a FIFO queue, unbounded or bounded.
 * - {@linkcode Stack}: a LIFO stack, unbounded or bounded.
 * - {@linkcode Hashtbl}: a hash table from numbers to numbers that rehashes
 *   as it grows and shrinks.
 * - {@linkcode Dllist}: a doubly linked list whose nodes can be removed and
 *   moved between lists, by any number of workers at once.
 *
 * The unbounded structures allocate their nodes inside transactions. What
 * an attempt allocated is freed again when the attempt does not commit
 * (fails, blocks, throws, or is rolled back by `Xt.first`/`rollback`): each
 * allocation is recorded in the attempt's own log through a per-worker
 * marker Loc, so a committed marker value tells exactly which allocations
 * took effect. Removed nodes of queues, stacks and tables are retired
 * through the heap's epochs after the commit that unlinked them
 * (`Xt.postCommit`), so transactions still reading them stay safe. A
 * Dllist's nodes are handed out to callers, so they are type-stable
 * instead: a removed node waits on a free list of the heap for reuse by a
 * later insert, and a handle to it, in any worker, only gets `false`.
 *
 * @example
 * ```ts
 * import { Mvar, Queue } from "@sabre/sabre/stm/data";
 * import { Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const jobs = Queue.create(heap, { capacity: 16 });
 * const current = Mvar.create(heap);
 * jobs.add(7);
 * // Move a job into the empty Mvar, atomically (waits for both conditions).
 * Xt.commit((xt) => current.xtPut(xt, jobs.xtTake(xt)));
 * console.assert(current.take() === 7 && jobs.tryTake() === undefined);
 * ```
 *
 * @module
 */

export { Accumulator, type AccumulatorHandle } from "./accumulator.ts";
export { Mvar, type MvarHandle } from "./mvar.ts";
export { StmPromise, type StmPromiseHandle } from "./promise.ts";
export { Queue, type QueueHandle } from "./queue.ts";
export { Stack, type StackHandle } from "./stack.ts";
export { Hashtbl, type HashtblHandle } from "./hashtbl.ts";
export { Dllist, type DllistHandle, DllistNode } from "./dllist.ts";
