/**
 * Checks that every waker notifies: workers park on a primitive with
 * recovery from killed wakers turned off (no park slices, no periodic
 * re-runs: see `setKilledWakerRecovery` in latch/parking.ts), the test then
 * releases the primitive, and each worker must be woken by a notify. A
 * missing notify leaves a worker parked until the run's limit
 * ({@linkcode WAKE_TIMEOUT_MS}), which fails the run, instead of waking it
 * one park slice later as recovery would. Workers wait without a timeout of
 * their own: a timed-out waiter takes one last look and may succeed, which
 * would hide the fault.
 *
 * @module
 */

import { setKilledWakerRecovery } from "../latch/parking.ts";
import type { SharedHeap } from "../memory/mod.ts";
import { spawnWorkers, type WorkerContext } from "./harness.ts";

/** The limit of a run: long enough that only a missing notify reaches it. */
export const WAKE_TIMEOUT_MS = 15_000;

/** How long the test lets the workers park after they said they would. */
const PARK_MS = 150;

/**
 * Worker side: turns recovery off in this worker and tells the test that
 * it is about to park. Call it just before the blocking call.
 *
 * @example
 * ```ts ignore
 * export function waiter(ctx: WorkerContext<Args>): void {
 *   aboutToPark(ctx);
 *   mutex.acquire();
 * }
 * ```
 */
export function aboutToPark(ctx: WorkerContext<unknown>): void {
  setKilledWakerRecovery(false);
  ctx.post("parking");
}

/** What {@linkcode expectWoken} runs. */
export interface WakeupRun<A> {
  readonly module: string | URL;
  readonly fn: string;
  readonly workers: number;
  readonly heap?: SharedHeap;
  readonly args: A;
  /** Releases what the workers wait on; runs once every worker said it parks. */
  readonly release: () => void | Promise<void>;
}

/**
 * Test side: runs the workers, waits until each has called
 * {@linkcode aboutToPark} and a little more, calls `release`, and resolves
 * with the workers' results once every one of them was woken and finished.
 * Recovery is off in this thread meanwhile too.
 *
 * @example
 * ```ts ignore
 * await expectWoken({ module, fn: "waiter", workers: 4, args, release: () => mutex.release() });
 * ```
 */
export async function expectWoken<A, R = unknown>(run: WakeupRun<A>): Promise<R[]> {
  const was = setKilledWakerRecovery(false);
  try {
    await using group = spawnWorkers<A, R>({
      module: run.module,
      fn: run.fn,
      workers: run.workers,
      heap: run.heap,
      args: run.args,
      timeoutMs: WAKE_TIMEOUT_MS,
    });
    const parking = Promise.withResolvers<void>();
    let count = 0;
    group.onMessage((_, value) => {
      if (value === "parking" && ++count === run.workers) parking.resolve();
    });
    // A worker that fails before parking fails the run here.
    await Promise.race([parking.promise, group.results]);
    await new Promise((resolve) => setTimeout(resolve, PARK_MS));
    await run.release();
    return await group.results;
  } finally {
    setKilledWakerRecovery(was);
  }
}
