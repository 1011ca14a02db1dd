/**
 * Worker functions for the harness tests that pass a SharedHeap.
 *
 * @module
 */

import type { SharedHeap } from "../../memory/mod.ts";
import type { WorkerContext } from "../harness.ts";

function heapOf(ctx: WorkerContext<unknown>): SharedHeap {
  if (ctx.heap === undefined) throw new Error("this worker function needs a heap");
  return ctx.heap;
}

/** Returns this worker's registry slot, after every worker has read its own. */
export function slotOf(ctx: WorkerContext<unknown>): number {
  const slot = heapOf(ctx).slot;
  ctx.barrier.wait();
  return slot;
}

/** Allocates and frees forever with a checkpoint per operation, posting progress. */
export function churnUntilStopped(ctx: WorkerContext<unknown>): never {
  const heap = heapOf(ctx);
  const live: number[] = [];
  for (let i = 0;; i++) {
    ctx.checkpoint();
    if (live.length < 64 && ctx.random() < 0.6) {
      const ptr = heap.allocate(16 + ctx.randomInt(512));
      heap.i32[ptr >> 2] = i;
      live.push(ptr);
    } else if (live.length > 0) {
      heap.free(live.splice(ctx.randomInt(live.length), 1)[0]);
    }
    if (i % 1000 === 0) ctx.post(i);
  }
}

/** Pins an epoch, says so, and hangs until stopped: it dies pinned. */
export function diePinned(ctx: WorkerContext<unknown>): never {
  const heap = heapOf(ctx);
  heap.pin();
  ctx.post("pinned");
  ctx.hang();
}

/** Returns with an epoch still pinned, so closing the heap fails. */
export function returnPinned(ctx: WorkerContext<unknown>): string {
  heapOf(ctx).pin();
  return "left pinned";
}

/** Workers 0 to 2 churn until stopped; worker 3 allocates a little, then throws. */
export function failWhileOthersChurn(ctx: WorkerContext<unknown>): number {
  if (ctx.index !== 3) churnUntilStopped(ctx);
  const heap = heapOf(ctx);
  for (let i = 0; i < 1000; i++) heap.free(heap.allocate(64));
  throw new Error("worker 3 gives up");
}

/** Retires one block twice, the fault that a retire audit catches. */
export function retireTwice(ctx: WorkerContext<unknown>): number {
  const heap = heapOf(ctx);
  const block = heap.allocate(32);
  heap.retire(block);
  heap.retire(block);
  return block;
}
