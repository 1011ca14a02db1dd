/**
 * Worker bodies for wakeup_test.ts: each blocks once in a transaction (sync
 * commits in even workers, async in odd ones) with recovery from killed
 * wakers off: no park slices and no periodic re-runs, so that only a
 * committer's notify can wake it.
 *
 * @module
 */

import type { WorkerContext } from "../testing/harness.ts";
import { aboutToPark } from "../testing/wakeups.ts";
import { Loc, type LocHandle, Retry, Xt } from "./mod.ts";
import { Queue, type QueueHandle } from "./data/mod.ts";

/** Arguments of {@linkcode blockOnce}. */
export interface WakeArgs {
  readonly kind: "loc" | "queue";
  readonly loc?: LocHandle;
  readonly queue?: QueueHandle;
}

/** Blocks once until the test commits what it waits for; returns what it got. */
export async function blockOnce(ctx: WorkerContext<WakeArgs>): Promise<number> {
  const sync = ctx.index % 2 === 0;
  if (ctx.args.kind === "queue") {
    const queue = Queue.attach(ctx.args.queue!);
    aboutToPark(ctx);
    return sync ? queue.take() : await queue.takeAsync();
  }
  const loc = Loc.attach(ctx.args.loc!);
  const tx = (xt: Xt): number => {
    const value = xt.get(loc);
    Retry.unless(value !== 0);
    return value;
  };
  aboutToPark(ctx);
  return sync ? Xt.commit(tx) : await Xt.commitAsync(tx);
}
