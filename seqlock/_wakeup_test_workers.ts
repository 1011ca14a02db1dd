/**
 * Worker bodies for wakeup_test.ts: each parks once on a SeqLock or SeqCell
 * (sync forms in even workers, async in odd ones) with recovery from killed
 * wakers off, so that only a notify can wake it.
 *
 * @module
 */

import type { WorkerContext } from "../testing/harness.ts";
import { aboutToPark } from "../testing/wakeups.ts";
import { SeqCell, type SeqCellHandle, SeqLock, type SeqLockHandle } from "./mod.ts";

/** Arguments of {@linkcode parkOnce}. */
export interface WakeArgs {
  readonly kind: "seqlock-read" | "seqlock-write" | "seqcell-read";
  readonly lock?: SeqLockHandle;
  readonly cell?: SeqCellHandle;
}

/** Parks once on what `kind` names, until the test releases it. */
export async function parkOnce(ctx: WorkerContext<WakeArgs>): Promise<number> {
  const sync = ctx.index % 2 === 0;
  switch (ctx.args.kind) {
    case "seqlock-read": {
      const lock = SeqLock.attach(ctx.args.lock!);
      aboutToPark(ctx);
      return sync ? lock.read(() => lock.sequence) : await lock.readAsync(() => lock.sequence);
    }
    case "seqlock-write": {
      const lock = SeqLock.attach(ctx.args.lock!);
      aboutToPark(ctx);
      if (sync) return lock.write(() => 1);
      const guard = await lock.writeLockAsync();
      guard.unlock();
      return 1;
    }
    case "seqcell-read": {
      const cell = SeqCell.attach<{ a: "i32"; b: "i32" }>(ctx.args.cell!);
      aboutToPark(ctx);
      const { a, b } = sync ? cell.read() : await cell.readAsync();
      if (a + b !== 0) throw new Error(`torn read: ${a}, ${b}`);
      return a;
    }
  }
}
