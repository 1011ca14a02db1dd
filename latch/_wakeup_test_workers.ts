/**
 * Worker bodies for wakeup_test.ts: each parks once on a latch primitive
 * (sync forms in even workers, async in odd ones) with recovery from killed
 * wakers off, so that only a notify can wake it.
 *
 * @module
 */

import type { SharedHandle } from "../memory/mod.ts";
import type { WorkerContext } from "../testing/harness.ts";
import { aboutToPark } from "../testing/wakeups.ts";
import { Condvar, type CondvarHandle, HybridLatch, LatchWords, Mutex, RwLock } from "./mod.ts";

/** What the workers wait for. */
export type WakeKind =
  | "mutex"
  | "rwlock-read"
  | "rwlock-write"
  | "condvar-one"
  | "condvar-all"
  | "hybrid-exclusive"
  | "hybrid-shared"
  | "hybrid-optimistic"
  | "latch-words";

/** Arguments of {@linkcode parkOnce}. */
export interface WakeArgs {
  readonly kind: WakeKind;
  /** The Mutex, RwLock or HybridLatch (for Condvar kinds: the Mutex). */
  readonly lock?: SharedHandle;
  readonly condvar?: CondvarHandle;
  /** Shared words: a Condvar's token count at 0, or a latch at 0. */
  readonly words?: SharedArrayBuffer;
}

/** Parks once on what `kind` names, until the test releases it. */
export async function parkOnce(ctx: WorkerContext<WakeArgs>): Promise<void> {
  const { kind } = ctx.args;
  const sync = ctx.index % 2 === 0;
  // No timeout: a timed-out waiter takes one last look and may succeed,
  // which would hide a missing notify. The run's own limit catches a hang.
  const options = {};
  const words = ctx.args.words === undefined ? undefined : new Int32Array(ctx.args.words);
  switch (kind) {
    case "mutex": {
      const mutex = Mutex.attach(ctx.args.lock as never);
      aboutToPark(ctx);
      if (sync) mutex.acquire(options);
      else await mutex.acquireAsync(options);
      mutex.release();
      return;
    }
    case "rwlock-read":
    case "rwlock-write": {
      const lock = RwLock.attach(ctx.args.lock as never);
      aboutToPark(ctx);
      if (kind === "rwlock-read") {
        if (sync) lock.acquireRead(options);
        else await lock.acquireReadAsync(options);
        lock.releaseRead();
      } else {
        if (sync) lock.acquireWrite(options);
        else await lock.acquireWriteAsync(options);
        lock.releaseWrite();
      }
      return;
    }
    case "condvar-one":
    case "condvar-all": {
      const mutex = Mutex.attach(ctx.args.lock as never);
      const condvar = Condvar.attach(ctx.args.condvar!);
      const tokens = words!;
      const none = () => Atomics.load(tokens, 0) === 0;
      if (sync) mutex.acquire(options);
      else await mutex.acquireAsync(options);
      aboutToPark(ctx);
      if (sync) condvar.waitWhile(mutex, none, options);
      else await condvar.waitWhileAsync(mutex, none, options);
      // notifyAll sets a flag that stays; notifyOne hands out one token each.
      if (kind === "condvar-one") Atomics.sub(tokens, 0, 1);
      mutex.release();
      return;
    }
    case "hybrid-exclusive":
    case "hybrid-shared":
    case "hybrid-optimistic": {
      const latch = HybridLatch.attach(ctx.args.lock as never);
      aboutToPark(ctx);
      if (kind === "hybrid-exclusive") {
        const guard = sync ? latch.exclusive(options) : await latch.exclusiveAsync(options);
        guard.unlock();
      } else if (kind === "hybrid-shared") {
        const guard = sync ? latch.shared(options) : await latch.sharedAsync(options);
        guard.unlock();
      } else {
        const guard = sync
          ? latch.optimisticOrSpin(options)
          : await latch.optimisticOrSpinAsync(options);
        guard.recheck();
      }
      return;
    }
    case "latch-words": {
      aboutToPark(ctx);
      LatchWords.optimistic(words!, 0, Infinity);
      return;
    }
  }
}
