/**
 * Tools for sabre's concurrency tests: run a function in N real workers at
 * once, line them up with a barrier, record what each did, and check the
 * histories against a sequential model.
 *
 * - {@linkcode runWorkers} / {@linkcode spawnWorkers}: start the workers on a
 *   start barrier, pass a `SharedHeap` and per-worker arguments, collect the
 *   results, stop workers early for fault tests, time out stuck runs.
 * - {@linkcode Barrier}: a reusable barrier for phases inside a test.
 * - {@linkcode HistoryRecorder}, {@linkcode mergeHistories} and
 *   {@linkcode assertLinearizable}: record operations and check them for
 *   linearizability.
 *
 * ## Writing a concurrency test
 *
 * 1. Put the worker side in a module beside the test, named like
 *    `_mutex_workers.ts`. Each export is a worker function: it receives a
 *    {@linkcode WorkerContext} and returns a structured-clonable result.
 * 2. In the test, create the heap and the structure under test, and pass the
 *    structure's `handle` in `args`; the worker calls `X.attach(handle)`.
 *    `ctx.heap` is the heap, attached and joined in the worker.
 * 3. Draw random operations from `ctx.random()`: it is seeded per worker from
 *    the group's seed, which every failure message shows. Pass that number
 *    as `seed` (or set `SABRE_SEED`) to replay the same operations; the
 *    interleaving, of course, differs from run to run.
 * 4. Return what the worker saw (counts, a recorded history) and check it in
 *    the test: invariants first, then linearizability against a model.
 * 5. Run the same test with 8 workers as well: the machines that run the
 *    tests have 2 cores, and oversubscription finds other interleavings.
 *    Never assert a timing; keep `timeoutMs` generous.
 *
 * Run tests with `--allow-read` (workers load modules from disk) and
 * `--allow-env` (for `SABRE_SEED` and `SABRE_STRESS`).
 *
 * ## Fault tests
 *
 * `group.terminate(i)` stops worker `i` as if it had been killed, then
 * evicts its heap slot so epochs and the registry recover. Deno cannot
 * interrupt a worker that runs JavaScript or is parked in `Atomics.wait`,
 * so the worker stops at its next checkpoint: `ctx.checkpoint()`,
 * `ctx.post()`, `ctx.hang()`, an `await` that yields to the event loop, or
 * the end of its function. To kill a worker while it holds a lock, take the
 * lock, `ctx.post()` to tell the test, then `ctx.hang()`.
 *
 * @example A worker module (`_counter_workers.ts` beside the test)
 * ```ts
 * import {
 *   HistoryClock,
 *   type HistoryClockHandle,
 *   HistoryRecorder,
 *   type OpRecord,
 *   type WorkerContext,
 * } from "../testing/mod.ts";
 *
 * export interface CounterArgs {
 *   counter: SharedArrayBuffer;
 *   clock: HistoryClockHandle;
 *   ops: number;
 * }
 *
 * export function fetchAndAdd(ctx: WorkerContext<CounterArgs>): readonly OpRecord[] {
 *   const counter = new Int32Array(ctx.args.counter);
 *   const recorder = new HistoryRecorder(ctx.index, HistoryClock.attach(ctx.args.clock));
 *   for (let i = 0; i < ctx.args.ops; i++) {
 *     ctx.checkpoint(); // lets group.terminate() stop the worker here
 *     const delta = 1 + ctx.randomInt(3);
 *     recorder.record("fetchAndAdd", [delta], () => Atomics.add(counter, 0, delta));
 *   }
 *   return recorder.records;
 * }
 * ```
 *
 * @example The test (this one runs the copy in `testing/_fixtures/counter.ts`)
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   assertLinearizable,
 *   counterModel,
 *   HistoryClock,
 *   mergeHistories,
 *   type OpRecord,
 *   runWorkers,
 * } from "../testing/mod.ts";
 * import type { CounterArgs } from "./_fixtures/counter.ts";
 *
 * const counter = new SharedArrayBuffer(4);
 * const clock = HistoryClock.create();
 * const perWorker = await runWorkers<CounterArgs, readonly OpRecord[]>({
 *   module: new URL("./_fixtures/counter.ts", import.meta.url),
 *   fn: "fetchAndAdd",
 *   workers: 4,
 *   args: { counter, clock: clock.handle, ops: 50 },
 * });
 * const history = mergeHistories(perWorker);
 * const total = history.reduce((sum, op) => sum + (op.args[0] as number), 0);
 * assert.equal(new Int32Array(counter)[0], total); // invariant: no update lost
 * assertLinearizable(history, counterModel()); // each result fits one order
 * ```
 *
 * @module
 */

export * from "./barrier.ts";
export * from "./harness.ts";
export * from "./history.ts";
export * from "./linearizability.ts";
