/**
 * A module that takes a random time to load, so that the workers of a group
 * become ready at different moments. Used to check the start barrier.
 *
 * @module
 */

import type { WorkerContext } from "../harness.ts";

await new Promise((resolve) => setTimeout(resolve, Math.random() * 300));

/**
 * Reads, as its first action, how many workers have joined the heap. All of
 * them joined before the start barrier, so every worker must see all. Waits
 * for the others before returning, so that nobody leaves the registry early.
 */
export function countJoined(ctx: WorkerContext): number {
  const joined = ctx.heap!.stats().workers;
  ctx.barrier.wait();
  return joined;
}
