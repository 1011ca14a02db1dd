/**
 * The worker module of the example in `testing/mod.ts`: randomized
 * fetch-and-add operations on a shared counter, recorded as a history.
 *
 * @module
 */

import {
  HistoryClock,
  type HistoryClockHandle,
  HistoryRecorder,
  type OpRecord,
  type WorkerContext,
} from "../mod.ts";

/** Arguments of {@linkcode fetchAndAdd}. */
export interface CounterArgs {
  /** One Int32: the counter under test. */
  readonly counter: SharedArrayBuffer;
  /** The run's history clock. */
  readonly clock: HistoryClockHandle;
  /** Operations per worker. */
  readonly ops: number;
}

/** Adds 1 to 3 to the counter `ops` times, recording each operation. */
export function fetchAndAdd(ctx: WorkerContext<CounterArgs>): readonly OpRecord[] {
  const counter = new Int32Array(ctx.args.counter);
  const recorder = new HistoryRecorder(ctx.index, HistoryClock.attach(ctx.args.clock));
  for (let i = 0; i < ctx.args.ops; i++) {
    ctx.checkpoint();
    const delta = 1 + ctx.randomInt(3);
    recorder.record("fetchAndAdd", [delta], () => Atomics.add(counter, 0, delta));
  }
  return recorder.records;
}
