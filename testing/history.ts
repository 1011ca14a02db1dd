/**
 * Recording concurrent histories for linearizability checking.
 *
 * Each worker owns a {@linkcode HistoryRecorder}. Around every operation it
 * calls {@linkcode HistoryRecorder.invoke} before the operation starts and
 * {@linkcode HistoryRecorder.respond} after it returns. The recorder keeps one
 * plain {@linkcode OpRecord} per operation; the array goes back to the parent
 * through `postMessage`, and {@linkcode mergeHistories} joins the arrays of all
 * workers into one {@linkcode History} for the checker in `linearizability.ts`.
 *
 * Time. Every timestamp is a tick of one {@linkcode HistoryClock}: a counter in
 * a `SharedArrayBuffer` that every worker advances with `Atomics.add`. Atomics
 * are sequentially consistent, so all ticks of a run fall into one total order
 * that every worker agrees on, with no two ticks equal. The invoke tick is
 * taken before the operation's first access to the structure and the response
 * tick after its last, so the recorded interval contains the real one: if op A
 * responded before op B was invoked (A's response tick < B's invoke tick),
 * then A really finished before B started, and a checker that orders A before
 * B asks nothing the structure did not promise.
 *
 * Wall clocks were the other option. A worker's `performance.timeOrigin`
 * differs from its parent's, and `timeOrigin + now()` loses sub-microsecond
 * precision in the addition, so two events ordered by Atomics can get times
 * in the wrong order. That would make a correct structure fail the check, so
 * sabre uses the counter. Its price is one contended atomic add per invoke
 * and per response, which slightly serialises the workers under test.
 *
 * Pending operations. A record whose `response` is `null` never responded:
 * its worker was terminated, or the operation threw. It may or may not have
 * taken effect; the checker lets it take effect at any point after its
 * invocation, or not at all.
 *
 * @module
 */

/**
 * One operation as a worker saw it. Plain data: it survives `postMessage`
 * (structured clone) when `args` and `result` do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OpRecord } from "./history.ts";
 * const write: OpRecord = {
 *   worker: 0, seq: 0, op: "write", args: [1], invoke: 1, response: 2, result: undefined, clock: 0,
 * };
 * assert.deepEqual(structuredClone(write), write);
 * ```
 */
export interface OpRecord {
  /** Index of the worker that ran the operation. */
  readonly worker: number;
  /** Position of the operation in its worker's program order: 0, 1, 2, … */
  readonly seq: number;
  /** Operation name, as the sequential model knows it (`"get"`, `"enqueue"`, …). */
  readonly op: string;
  /** Arguments of the operation. */
  readonly args: readonly unknown[];
  /** Clock tick taken just before the operation started. */
  readonly invoke: number;
  /** Clock tick taken just after the operation returned, or `null` while pending. */
  response: number | null;
  /** What the operation returned; `undefined` while pending. */
  result: unknown;
  /** Identifies the clock the ticks come from; records of one history share it. */
  readonly clock: number;
}

/**
 * A merged history: the records of every worker, sorted by invoke time, one
 * record per `(worker, seq)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type History, HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("read", [], () => 0);
 * const history: History = rec.records;
 * assert.equal(history.length, 1);
 * ```
 */
export type History = readonly OpRecord[];

/**
 * A plain object that `postMessage` can carry, from which {@linkcode HistoryClock.attach} rebuilds a clock.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HistoryClock, type HistoryClockHandle } from "./history.ts";
 * const handle: HistoryClockHandle = structuredClone(HistoryClock.create().handle);
 * assert.equal(HistoryClock.attach(handle).now(), 0);
 * ```
 */
export interface HistoryClockHandle {
  /** Always `"sabre.HistoryClock"`. */
  readonly kind: "sabre.HistoryClock";
  /** Layout version, currently 1. */
  readonly version: 1;
  /** The buffer that holds the clock. */
  readonly sab: SharedArrayBuffer;
  /** Byte offset of the clock's two Int32 words (tick counter, then clock id); a multiple of 4. */
  readonly offset: number;
}

const CLOCK_KIND = "sabre.HistoryClock";
const CLOCK_VERSION = 1;
/** Word 0: tick counter. Word 1: clock id, written once at creation. */
const CLOCK_BYTES = 8;

function randomClockId(): number {
  const id = new Int32Array(1);
  do crypto.getRandomValues(id); while (id[0] === 0);
  return id[0];
}

/**
 * A global logical clock shared by every worker of a test: an Int32 counter
 * in a `SharedArrayBuffer`. Each {@linkcode HistoryClock.tick} returns a
 * value larger than every tick that happened before it in any worker.
 *
 * Ticks are Int32, so one clock serves about 2^31 ticks (two per operation).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HistoryClock } from "./history.ts";
 * const clock = HistoryClock.create();
 * // in the parent: new Worker(url).postMessage({ clock: clock.handle });
 * const same = HistoryClock.attach(clock.handle); // in the worker
 * const a = clock.tick();
 * const b = same.tick();
 * assert(a < b && same.id === clock.id);
 * ```
 */
export class HistoryClock {
  readonly #view: Int32Array;
  readonly #handle: HistoryClockHandle | null;
  readonly #id: number;

  private constructor(view: Int32Array, handle: HistoryClockHandle | null, id: number) {
    this.#view = view;
    this.#handle = handle;
    this.#id = id;
  }

  /**
   * Creates a clock at time 0 in a new 8-byte `SharedArrayBuffer`, or in the
   * 8 bytes at `offset` in `sab` when given (used for nothing else; create
   * before any worker attaches).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * const clock = HistoryClock.create();
   * assert(clock.tick() === 1);
   * ```
   */
  static create(sab?: SharedArrayBuffer, offset = 0): HistoryClock {
    const buffer = sab ?? new SharedArrayBuffer(CLOCK_BYTES);
    checkPlacement(buffer, offset);
    const view = new Int32Array(buffer, offset, 2);
    const id = randomClockId();
    Atomics.store(view, 0, 0);
    Atomics.store(view, 1, id);
    const handle: HistoryClockHandle = {
      kind: CLOCK_KIND,
      version: CLOCK_VERSION,
      sab: buffer,
      offset,
    };
    return new HistoryClock(view, handle, id);
  }

  /**
   * Rebuilds in this worker the clock that `handle` describes.
   *
   * @throws {TypeError} when `handle` is not a clock handle of this version.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * const clock = HistoryClock.create();
   * const again = HistoryClock.attach(structuredClone(clock.handle));
   * clock.tick();
   * assert(again.now() === 1);
   * ```
   */
  static attach(handle: HistoryClockHandle): HistoryClock {
    if (
      handle === null || typeof handle !== "object" || handle.kind !== CLOCK_KIND ||
      !(handle.sab instanceof SharedArrayBuffer)
    ) {
      throw new TypeError(
        `Cannot attach HistoryClock as 'handle' is not a HistoryClock handle: current value is ${
          Deno.inspect(handle, { depth: 1 })
        }`,
      );
    }
    if (handle.version !== CLOCK_VERSION) {
      throw new TypeError(
        `Cannot attach HistoryClock as 'handle.version' must be ${CLOCK_VERSION}: current value is ${handle.version}`,
      );
    }
    checkPlacement(handle.sab, handle.offset);
    const view = new Int32Array(handle.sab, handle.offset, 2);
    return new HistoryClock(view, handle, Atomics.load(view, 1));
  }

  /**
   * Wraps a bare Int32 view: word 0 of `view` is the counter. Every worker
   * must wrap a view of the same buffer and offset. Such clocks all report id
   * 0, so {@linkcode mergeHistories} cannot tell two of them apart; prefer
   * {@linkcode HistoryClock.create}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * const words = new Int32Array(new SharedArrayBuffer(64));
   * const clock = HistoryClock.fromView(words.subarray(3));
   * clock.tick();
   * assert(Atomics.load(words, 3) === 1);
   * ```
   */
  static fromView(view: Int32Array): HistoryClock {
    if (!(view instanceof Int32Array) || !(view.buffer instanceof SharedArrayBuffer)) {
      throw new TypeError(
        `Cannot use 'view' as a clock as it must be an Int32Array over a SharedArrayBuffer: current value is ${
          Deno.inspect(view, { depth: 0 })
        }`,
      );
    }
    if (view.length < 1) {
      throw new RangeError("Cannot use 'view' as a clock as it is empty: current length is 0");
    }
    return new HistoryClock(view, null, 0);
  }

  /**
   * A clock private to the current thread, for histories recorded on one
   * thread (unit tests of models and checkers). Never share its ticks with
   * another worker's: they are unrelated counters.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * const clock = HistoryClock.local();
   * assert(clock.tick() < clock.tick());
   * ```
   */
  static local(): HistoryClock {
    return new HistoryClock(new Int32Array(2), null, randomClockId());
  }

  /**
   * The handle to send to workers. Throws for clocks made by
   * {@linkcode HistoryClock.fromView} or {@linkcode HistoryClock.local}: send
   * the view itself, or nothing.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * assert(HistoryClock.create().handle.kind === "sabre.HistoryClock");
   * ```
   */
  get handle(): HistoryClockHandle {
    if (this.#handle === null) {
      throw new TypeError(
        "Cannot get the handle of a HistoryClock made by fromView() or local(): it has none",
      );
    }
    return this.#handle;
  }

  /**
   * The id written at creation; every record carries its clock's id so that
   * {@linkcode mergeHistories} can refuse histories timed by different clocks.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * assert(HistoryClock.create().id !== 0);
   * ```
   */
  get id(): number {
    return this.#id;
  }

  /**
   * Advances the clock and returns the new time. Sequentially consistent: it
   * is ordered with every other Atomics operation of every worker.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * const clock = HistoryClock.create();
   * assert(clock.tick() === 1 && clock.tick() === 2);
   * ```
   */
  tick(): number {
    return Atomics.add(this.#view, 0, 1) + 1;
  }

  /**
   * The latest time handed out, without advancing the clock.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryClock } from "./history.ts";
   * const clock = HistoryClock.create();
   * clock.tick();
   * assert(clock.now() === 1);
   * ```
   */
  now(): number {
    return Atomics.load(this.#view, 0);
  }
}

function checkPlacement(sab: SharedArrayBuffer, offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0) {
    throw new RangeError(
      `Cannot place HistoryClock as 'offset' must be a non-negative multiple of 4: current value is ${offset}`,
    );
  }
  if (offset + CLOCK_BYTES > sab.byteLength) {
    throw new RangeError(
      `Cannot place HistoryClock as 'offset' + ${CLOCK_BYTES} must be at most the buffer's byteLength of ${sab.byteLength}: current value is ${offset}`,
    );
  }
}

/**
 * Records one worker's operations. Not shared: each worker makes its own,
 * with its own `worker` index and the common clock.
 *
 * Records are created at {@linkcode HistoryRecorder.invoke} with
 * `response: null` and completed in place by
 * {@linkcode HistoryRecorder.respond}, so `records` can be sent at any time:
 * operations still running, or abandoned, arrive as pending. `args` is copied
 * (shallowly) at invoke; do not mutate argument or result objects afterwards.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HistoryClock, HistoryRecorder } from "./history.ts";
 * const clock = HistoryClock.create(); // send clock.handle to every worker
 * const rec = new HistoryRecorder(0, HistoryClock.attach(clock.handle));
 * const map = new Map<string, number>();
 * const id = rec.invoke("set", ["a", 1]);
 * const previous = map.get("a");
 * map.set("a", 1);
 * rec.respond(id, previous);
 * const got = rec.record("get", ["a"], () => map.get("a"));
 * assert(got === 1 && rec.records.length === 2);
 * // in a worker: postMessage(rec.records)
 * ```
 */
export class HistoryRecorder {
  readonly #worker: number;
  readonly #clock: HistoryClock;
  readonly #records: OpRecord[] = [];

  /**
   * Makes a recorder for worker number `worker` (any non-negative integer
   * unique among the workers of a run). Pass the run's shared `clock`; a bare
   * Int32Array is wrapped by {@linkcode HistoryClock.fromView}. Without a
   * clock the recorder makes its own {@linkcode HistoryClock.local}: enough
   * when this recorder alone records the history (tests of models), while
   * {@linkcode mergeHistories} refuses to mix its records with another
   * recorder's.
   *
   * @throws {RangeError} when `worker` is not a non-negative integer.
   */
  constructor(worker: number, clock?: HistoryClock | Int32Array) {
    if (!Number.isSafeInteger(worker) || worker < 0) {
      throw new RangeError(
        `Cannot create HistoryRecorder as 'worker' must be a non-negative integer: current value is ${worker}`,
      );
    }
    this.#worker = worker;
    this.#clock = clock === undefined
      ? HistoryClock.local()
      : clock instanceof HistoryClock
      ? clock
      : HistoryClock.fromView(clock);
  }

  /**
   * The worker index given at construction.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryRecorder } from "./history.ts";
   * assert(new HistoryRecorder(3).worker === 3);
   * ```
   */
  get worker(): number {
    return this.#worker;
  }

  /**
   * Every record so far, in program order; the recorder's own array, ready
   * for `postMessage`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryRecorder } from "./history.ts";
   * const rec = new HistoryRecorder(0);
   * rec.invoke("read", []);
   * assert(rec.records[0].response === null);
   * ```
   */
  get records(): OpRecord[] {
    return this.#records;
  }

  /**
   * Records that operation `op` is about to start with `args`, and returns
   * the id to pass to {@linkcode HistoryRecorder.respond}. Call it right
   * before the operation's first access to the structure under test.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryRecorder } from "./history.ts";
   * const rec = new HistoryRecorder(0);
   * const id = rec.invoke("write", [7]);
   * rec.respond(id, undefined);
   * assert(rec.records[id].op === "write");
   * ```
   */
  invoke(op: string, args: readonly unknown[] = []): number {
    if (typeof op !== "string") {
      throw new TypeError(
        `Cannot record operation as 'op' must be a string: current value is ${
          Deno.inspect(op, { depth: 0 })
        }`,
      );
    }
    const seq = this.#records.length;
    this.#records.push({
      worker: this.#worker,
      seq,
      op,
      args: [...args],
      invoke: this.#clock.tick(),
      response: null,
      result: undefined,
      clock: this.#clock.id,
    });
    return seq;
  }

  /**
   * Records that operation `id` returned `result`. Call it right after the
   * operation returns. An operation that threw should either be left pending
   * (its effect is unknown) or responded with a value the model expects for
   * that failure.
   *
   * @throws {RangeError} when `id` is not a pending operation of this recorder.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryRecorder } from "./history.ts";
   * const rec = new HistoryRecorder(0);
   * const id = rec.invoke("read", []);
   * rec.respond(id, 5);
   * assert(rec.records[0].result === 5 && rec.records[0].response! > rec.records[0].invoke);
   * ```
   */
  respond(id: number, result: unknown): void {
    const record = this.#records[id];
    if (record === undefined || record.response !== null) {
      throw new RangeError(
        `Cannot record a response as 'id' must be a pending operation of worker ${this.#worker}: current value is ${id}${
          record ? " (already responded)" : ""
        }`,
      );
    }
    record.result = result;
    record.response = this.#clock.tick();
  }

  /**
   * Runs `fn` as operation `op(args)`: invoke, call, respond with what it
   * returned. If `fn` throws, the operation stays pending and the error
   * propagates.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HistoryRecorder } from "./history.ts";
   * const rec = new HistoryRecorder(0);
   * const n = rec.record("fetchAndAdd", [2], () => 40);
   * assert(n === 40 && rec.records[0].result === 40);
   * ```
   */
  record<T>(op: string, args: readonly unknown[], fn: () => T): T {
    const id = this.invoke(op, args);
    const result = fn();
    this.respond(id, result);
    return result;
  }
}

/**
 * Whether `record` never responded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HistoryRecorder, isPending } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.invoke("read", []);
 * assert(isPending(rec.records[0]));
 * ```
 */
export function isPending(record: OpRecord): boolean {
  return record.response === null;
}

/**
 * Joins per-worker record arrays into one {@linkcode History}: sorted by
 * invoke time (ties by worker, then seq), one record per `(worker, seq)`.
 *
 * A worker may send snapshots of its records more than once (after each
 * batch, say, so that a terminated worker still leaves most of its history):
 * duplicates of a `(worker, seq)` collapse into one, a completed copy winning
 * over a pending one.
 *
 * @throws {RangeError} when records come from different clocks, when a
 * record's response precedes its invocation, when one worker's operations
 * overlap (a worker runs them one at a time), or when two copies of
 * one operation disagree.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HistoryClock, HistoryRecorder, mergeHistories } from "./history.ts";
 * const clock = HistoryClock.create();
 * const a = new HistoryRecorder(0, clock);
 * const b = new HistoryRecorder(1, clock);
 * const ia = a.invoke("write", [1]);
 * b.record("read", [], () => 0);
 * a.respond(ia, undefined);
 * const history = mergeHistories([a.records, b.records]);
 * assert(history.length === 2 && history[0].worker === 0);
 * ```
 */
export function mergeHistories(perWorker: readonly (readonly OpRecord[])[]): History {
  const byOp = new Map<string, OpRecord>();
  let clock: number | undefined;
  for (const records of perWorker) {
    for (const r of records) {
      if (clock === undefined) clock = r.clock;
      else if (r.clock !== clock) {
        throw new RangeError(
          `Cannot merge histories as records come from different clocks (ids ${clock} and ${r.clock}): ` +
            `give every worker's HistoryRecorder the same HistoryClock; first record of the second clock is ${
              formatRecord(r)
            }`,
        );
      }
      if (r.response !== null && !(r.response >= r.invoke)) {
        throw new RangeError(
          `Cannot merge histories as a response must not precede its invocation: current record is ${
            formatRecord(r)
          }`,
        );
      }
      const id = `${r.worker}:${r.seq}`;
      const seen = byOp.get(id);
      if (
        seen !== undefined &&
        (seen.invoke !== r.invoke || seen.op !== r.op ||
          (seen.response !== null && r.response !== null && seen.response !== r.response))
      ) {
        throw new RangeError(
          `Cannot merge histories as two copies of one operation disagree: ${
            formatRecord(seen)
          } and ${formatRecord(r)}`,
        );
      }
      if (seen === undefined || (seen.response === null && r.response !== null)) byOp.set(id, r);
    }
  }
  const history = [...byOp.values()].sort((a, b) =>
    a.invoke - b.invoke || a.worker - b.worker || a.seq - b.seq
  );
  // Program order: a worker's operation must respond before its next one starts.
  const last = new Map<number, OpRecord>();
  for (const r of [...history].sort((a, b) => a.worker - b.worker || a.seq - b.seq)) {
    const prev = last.get(r.worker);
    if (prev !== undefined && (prev.response === null || prev.response > r.invoke)) {
      throw new RangeError(
        `Cannot merge histories as worker ${r.worker}'s operations overlap: ${
          formatRecord(prev)
        } then ${formatRecord(r)}`,
      );
    }
    last.set(r.worker, r);
  }
  return history;
}

/**
 * Formats a value compactly on one line, as reports print arguments and
 * results.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatValue } from "./history.ts";
 * assert(formatValue(["a", 1n, undefined]) === '[ "a", 1n, undefined ]');
 * ```
 */
export function formatValue(value: unknown): string {
  return Deno.inspect(value, { depth: 4, compact: true, breakLength: Infinity, colors: false });
}

/**
 * Formats a record on one line: `w<worker>#<seq> op(args) -> result [invoke..response]`,
 * with `pending` in place of result and response for a pending operation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatRecord } from "./history.ts";
 * const line = formatRecord({
 *   worker: 1, seq: 0, op: "get", args: ["k"], invoke: 3, response: 8, result: 5, clock: 0,
 * });
 * assert(line === 'w1#0 get("k") -> 5 [3..8]');
 * ```
 */
export function formatRecord(record: OpRecord): string {
  const args = record.args.map(formatValue).join(", ");
  const call = `w${record.worker}#${record.seq} ${record.op}(${args})`;
  return record.response === null
    ? `${call} pending [${record.invoke}..]`
    : `${call} -> ${formatValue(record.result)} [${record.invoke}..${record.response}]`;
}
