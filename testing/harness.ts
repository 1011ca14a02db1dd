/**
 * Runs a function of a test module in N real workers at once, for
 * concurrency tests.
 *
 * ## Lifecycle of a worker
 *
 * 1. The parent creates all workers (`_worker_entry.ts`) and posts each an
 *    `init` message: module URL, export name, index, arguments, the heap's
 *    handle, the start barrier's handle and a per-worker seed.
 * 2. The worker imports the module, attaches the heap, joins its registry and
 *    reports the slot (`joined`).
 * 3. It waits on the start barrier, which only the workers take part in; the
 *    parent does not, so its event loop keeps running and it can receive
 *    messages. When the last worker has arrived they all start together.
 * 4. It runs the function; `ctx.post()` sends progress messages meanwhile.
 * 5. It closes the heap (leaving the registry), then posts the result. The
 *    parent terminates each worker as soon as it has its result or error.
 *
 * ## Stopping a worker early
 *
 * Deno's `Worker.terminate()` only takes effect when the worker returns to
 * its event loop. A worker that runs JavaScript without yielding, or is
 * parked in `Atomics.wait`, keeps running. So {@linkcode WorkerGroup.terminate}
 * asks the worker to stop through a shared word, and the worker stops at its
 * next checkpoint: `ctx.checkpoint()`, `ctx.post()`, `ctx.hang()`, any
 * `await` that gives the event loop a turn, or the end of the function.
 * Stopped inside the function, it dies on the spot, as if killed: it calls
 * `self.close()`, which ends a Deno worker at once without unwinding, so no
 * `finally` block runs and no lock is released. The parent then evicts its
 * heap slot, so epochs and the registry recover.
 *
 * A loop that never reaches a checkpoint cannot be stopped: the group's
 * `timeoutMs` then fails the run with a {@linkcode TimeoutError} that names
 * it, and the thread runs on (or stays parked) until the process exits. Put
 * a `ctx.checkpoint()` (one Atomics load) in long loops of fault tests.
 *
 * @module
 */

import type { SharedHeap } from "../memory/mod.ts";
import { describeValue, SabreError, TimeoutError } from "../memory/mod.ts";
import { Barrier } from "./barrier.ts";
import type { InitMessage, ReportMessage } from "./_worker_entry.ts";
import {
  createRetireAudit,
  doubleRetires,
  installRetireAudit,
  type RetireAudit,
} from "./retire_audit.ts";

const ENTRY = new URL("./_worker_entry.ts", import.meta.url).href;

const MAX_WORKERS = 1024;
const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_TIMER_MS = 0x7fffffff;
/** How long a failed or timed-out group waits for its other workers to stop. */
const STOP_GRACE_MS = 1000;

/**
 * With `SABRE_RETIRE_AUDIT=1`, every heap given to spawnWorkers runs under a
 * retire audit (see retire_audit.ts) in this thread and in the workers, and
 * a group whose workers all finished fails if any block was retired twice
 * (the `retireAudit` option does the same for one group).
 */
const RETIRE_AUDIT = readRetireAuditFlag();
const retireAudits = new WeakMap<SharedHeap, RetireAudit>();

function readRetireAuditFlag(): boolean {
  try {
    return Deno.env.get("SABRE_RETIRE_AUDIT") === "1";
  } catch {
    return false; // no env permission: no audit
  }
}

/** The audit of `heap`, installed in this thread on first use. */
function retireAuditOf(heap: SharedHeap): RetireAudit {
  let audit = retireAudits.get(heap);
  if (audit === undefined) {
    audit = createRetireAudit(heap);
    installRetireAudit(heap, audit);
    retireAudits.set(heap, audit);
  }
  return audit;
}

/**
 * What a worker function receives.
 *
 * @example
 * ```ts
 * import type { WorkerContext } from "./harness.ts";
 *
 * // In a test module that the workers import:
 * export function countUp(ctx: WorkerContext<{ rounds: number }>): number {
 *   let total = 0;
 *   for (let round = 0; round < ctx.args.rounds; round++) {
 *     ctx.checkpoint();
 *     total += ctx.randomInt(10);
 *     ctx.barrier.wait(); // every worker finishes the round before the next
 *   }
 *   return total;
 * }
 * ```
 */
export interface WorkerContext<A = undefined> {
  /** This worker's index, from 0 to `workers - 1`. */
  readonly index: number;
  /** How many workers the group has. */
  readonly workers: number;
  /** The arguments for this worker (`args`, or `args(index)` when it is a function). */
  readonly args: A;
  /** The heap given to `spawnWorkers`, attached and joined in this worker; else undefined. */
  readonly heap: SharedHeap | undefined;
  /** This worker's seed, derived from the group's seed and the index. */
  readonly seed: number;
  /**
   * A reusable barrier of all the workers of the group: the start barrier,
   * reused for phases. Its waits are checkpoints too: a worker asked to stop
   * while it waits stops there. Stopping any worker breaks it for the others
   * (`BrokenBarrierError`), since that worker will never arrive.
   */
  readonly barrier: Barrier;
  /** A uniform number in [0, 1) from a fast generator seeded with `seed`. */
  random(): number;
  /** A uniform integer in [0, bound), from the same generator as `random`. */
  randomInt(bound: number): number;
  /** `console.log` with the worker's index as a prefix. */
  log(...data: unknown[]): void;
  /**
   * Sends `value` (structured-clonable) to the parent's `onMessage` listeners.
   * Also a checkpoint: a worker that was asked to stop stops here instead.
   */
  post(value: unknown): void;
  /**
   * Stops here for good if the parent asked this worker to stop (see
   * {@linkcode WorkerGroup.terminate}); otherwise returns at once.
   */
  checkpoint(): void;
  /** Parks until the parent asks this worker to stop, then stops here. Never returns. */
  hang(): never;
}

/**
 * The shape of an exported worker function: called once with the context,
 * sync or async, and its (structured-clonable) return value is the worker's
 * result.
 *
 * @example
 * ```ts
 * import type { WorkerFunction } from "./harness.ts";
 *
 * export const square: WorkerFunction<number, number> = (ctx) => ctx.args * ctx.args;
 * ```
 */
export type WorkerFunction<A = undefined, R = unknown> = (
  ctx: WorkerContext<A>,
) => R | Promise<R>;

/**
 * Options of {@linkcode spawnWorkers} and {@linkcode runWorkers}.
 *
 * @example
 * ```ts
 * import type { SpawnOptions } from "./harness.ts";
 *
 * const options: SpawnOptions<{ id: number }> = {
 *   module: new URL("./_fixtures/basic.ts", import.meta.url),
 *   fn: "echo",
 *   workers: 4,
 *   args: (index) => ({ id: index * 10 }),
 *   timeoutMs: 30_000,
 *   seed: 42,
 * };
 * ```
 */
export interface SpawnOptions<A = undefined> {
  /**
   * The module that exports the worker function, as an absolute URL: for a
   * module beside the test, `new URL("./my_workers.ts", import.meta.url)`.
   */
  module: string | URL;
  /** The export to call. */
  fn: string;
  /** How many workers, from 1 to 1024. More than the machine has cores is fine. */
  workers: number;
  /** A heap to attach and join in every worker (`ctx.heap`). */
  heap?: SharedHeap;
  /**
   * Run the heap under a retire audit (see `retire_audit.ts`) in this
   * thread and in every worker; once all workers have finished, `results`
   * rejects if any block was retired twice. Default: whether the
   * `SABRE_RETIRE_AUDIT` environment variable is "1".
   */
  retireAudit?: boolean;
  /** Arguments for every worker, or a function from the index to the arguments of that worker. */
  args?: A | ((index: number) => A);
  /**
   * Limit for the whole run in milliseconds (default 60 000; `Infinity` for
   * none). On expiry every worker is stopped and `results` rejects with a
   * {@linkcode TimeoutError} naming the workers that had not finished.
   */
  timeoutMs?: number;
  /**
   * Seed of the group, an integer from 0 to 2^32 - 1. Default: the
   * `SABRE_SEED` environment variable when it is set and readable, else
   * random. It appears in failure messages so that a run can be replayed.
   */
  seed?: number;
}

/**
 * A progress message that a worker sent with `ctx.post(value)`.
 *
 * @example
 * ```ts
 * import type { WorkerMessage } from "./harness.ts";
 *
 * const message: WorkerMessage = { index: 2, value: "halfway" };
 * ```
 */
export interface WorkerMessage {
  /** Index of the worker that sent it. */
  readonly index: number;
  /** The value it posted. */
  readonly value: unknown;
}

/**
 * The running workers of one {@linkcode spawnWorkers} call.
 *
 * Every worker ends in one of three ways: it finishes (its result is kept),
 * it fails (the group fails), or it is stopped by
 * {@linkcode WorkerGroup.terminate} (its result is `undefined`, and that is no
 * failure). On the first failure, or on timeout, `results` rejects at once
 * and every other worker is asked to stop; `done` rejects once they have
 * stopped and their heap slots are evicted, or after a grace of one second
 * that abandons the workers that did not reach a checkpoint.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { spawnWorkers } from "./harness.ts";
 *
 * await using group = spawnWorkers<{ rounds: number }, number>({
 *   module: new URL("./_fixtures/basic.ts", import.meta.url),
 *   fn: "countRounds",
 *   workers: 2,
 *   args: { rounds: 3 },
 * });
 * const seen: number[] = [];
 * group.onMessage((index, value) => seen.push(index * 100 + Number(value)));
 * assert.deepEqual(await group.results, [3, 3]);
 * assert.equal(seen.length, 6);
 * ```
 */
export interface WorkerGroup<R> extends AsyncDisposable {
  /** How many workers the group has. */
  readonly size: number;
  /** The group's seed (see {@linkcode SpawnOptions.seed}). */
  readonly seed: number;
  /**
   * The workers' results in index order, `undefined` for stopped workers.
   * Resolves once every worker has finished or stopped. Rejects with a
   * {@linkcode WorkerFailedError} when a worker throws or its module fails to
   * load, or with a {@linkcode TimeoutError} when `timeoutMs` expires.
   */
  readonly results: Promise<R[]>;
  /**
   * Resolves once every worker has finished or stopped (terminated workers
   * have stopped and their slots are evicted); rejects like `results`, once
   * the other workers have stopped or were abandoned.
   */
  readonly done: Promise<void>;
  /**
   * Stops worker `index` as if it were killed at its next checkpoint (see the
   * module doc), evicts its heap slot, and resolves when that is done, or
   * when the group has failed or timed out. Breaks the shared barrier, so
   * that workers waiting on `ctx.barrier` fail instead of waiting forever;
   * this includes the start barrier, so stop a worker only after it started
   * (after its first message, say). Never rejects; no-op for a worker that
   * already ended.
   */
  terminate(index: number): Promise<void>;
  /** Stops every worker that has not ended, like `terminate`; resolves when all have. Never rejects. */
  terminateAll(): Promise<void>;
  /**
   * Calls `listener(index, value)` for each `ctx.post(value)`, in the order
   * each worker posted them. A listener that throws fails the group with its
   * error. Returns a function that removes the listener.
   */
  onMessage(listener: (index: number, value: unknown) => void): () => void;
  /**
   * The messages posted from now on, as an async iterator that ends when the
   * group is done. Call it right after spawning to miss none.
   */
  messages(): AsyncIterableIterator<WorkerMessage>;
  /** Same as {@linkcode WorkerGroup.terminateAll}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Where a worker was when it failed: loading its module (or joining the
 * heap), at the start barrier, running the function, sending its result, or
 * closing the heap afterwards.
 *
 * @example
 * ```ts
 * import type { FailurePhase } from "./harness.ts";
 *
 * const phase: FailurePhase = "load";
 * ```
 */
export type FailurePhase = "load" | "start" | "run" | "result" | "close";

/**
 * An error as a worker reported it: plain strings, since the error object
 * itself stays in the worker.
 *
 * @example
 * ```ts
 * import type { WorkerErrorInfo } from "./harness.ts";
 *
 * const info: WorkerErrorInfo = { name: "TypeError", message: "bad", stack: undefined };
 * ```
 */
export interface WorkerErrorInfo {
  /** The error's name, such as `"RangeError"`. */
  readonly name: string;
  /** The error's message. */
  readonly message: string;
  /** The error's stack in the worker, if it had one. */
  readonly stack: string | undefined;
}

/** The parts of a worker's failure that {@linkcode WorkerFailedError} reports. */
export interface WorkerFailure {
  /** Index of the worker that failed. */
  readonly index: number;
  /** How many workers the group has. */
  readonly workers: number;
  /** Name of the worker function. */
  readonly fn: string;
  /** The group's seed. */
  readonly seed: number;
  /** Where it failed: loading its module, at the start barrier, running, sending its result, or closing the heap. */
  readonly phase: FailurePhase;
  /** The thrown error's name (such as `"TypeError"`). */
  readonly name: string;
  /** The thrown error's message. */
  readonly message: string;
  /** The thrown error's stack in the worker, when it had one. */
  readonly stack?: string | undefined;
}

/**
 * A worker of a group threw, or its module could not be loaded. The message
 * names the worker's index, the function, the group's seed and the worker's
 * error with its stack.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkerFailedError } from "./harness.ts";
 *
 * const error = new WorkerFailedError({
 *   index: 2, workers: 4, fn: "insert", seed: 7, phase: "run",
 *   name: "RangeError", message: "bad key",
 * });
 * assert.equal(error.index, 2);
 * assert.match(error.message, /Worker 2 of 4 failed running "insert" \(seed 7\): RangeError: bad key/);
 * ```
 */
export class WorkerFailedError extends SabreError {
  /** Index of the worker that failed. */
  readonly index: number;
  /** Where it failed. */
  readonly phase: FailurePhase;
  /** The group's seed. */
  readonly seed: number;
  /** The worker's error: name, message and stack. */
  readonly workerError: WorkerErrorInfo;

  /** Creates the error from what the worker reported. */
  constructor(failure: WorkerFailure) {
    const { index, workers, fn, seed, phase, name, message, stack } = failure;
    const doing = {
      load: `to load "${fn}"`,
      start: `at the start barrier of "${fn}"`,
      run: `running "${fn}"`,
      result: `to send the result of "${fn}"`,
      close: `to close the heap after "${fn}"`,
    }[phase];
    const head = `${name}: ${message}`;
    const detail = stack === undefined
      ? head
      : stack.includes(message)
      ? stack
      : `${head}\n${stack}`;
    super(`Worker ${index} of ${workers} failed ${doing} (seed ${seed}): ${detail}`);
    this.index = index;
    this.phase = phase;
    this.seed = seed;
    this.workerError = { name, message, stack };
  }
}

/**
 * A small fast generator of uniform numbers in [0, 1) (xoshiro128**, seeded
 * through splitmix32), for reproducible random operations. Not for secrets.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { seededRandom } from "./harness.ts";
 *
 * const a = seededRandom(42);
 * const b = seededRandom(42);
 * const x = a();
 * assert.equal(x, b());
 * assert.ok(x >= 0 && x < 1);
 * ```
 */
export function seededRandom(seed: number): () => number {
  let mix = seed >>> 0;
  const splitmix32 = (): number => {
    mix = (mix + 0x9e3779b9) | 0;
    let z = mix;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) | 0;
  };
  let s0 = splitmix32();
  let s1 = splitmix32();
  let s2 = splitmix32();
  let s3 = splitmix32();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  return () => {
    const product = Math.imul(s1, 5);
    const out = Math.imul((product << 7) | (product >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    return out / 4294967296;
  };
}

/** Seed of worker `index` in a group seeded with `seed`: well mixed, distinct per index. */
function deriveSeed(seed: number, index: number): number {
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b9)) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function groupSeed(seed: number | undefined): number {
  if (seed !== undefined) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(
        `Cannot spawn workers as 'seed' must be an integer from 0 to 2^32 - 1: ` +
          `current value is ${describeValue(seed)}`,
      );
    }
    return seed;
  }
  try {
    const query = { name: "env", variable: "SABRE_SEED" } as const;
    if (Deno.permissions.querySync(query).state === "granted") {
      const text = Deno.env.get("SABRE_SEED");
      if (text !== undefined && text !== "") {
        const value = Number(text);
        if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
          throw new RangeError(
            `Cannot spawn workers as SABRE_SEED must be an integer from 0 to 2^32 - 1: ` +
              `current value is ${describeValue(text)}`,
          );
        }
        return value;
      }
    }
  } catch (error) {
    if (error instanceof RangeError) throw error;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (typeof module === "string") {
    try {
      return new URL(module).href;
    } catch {
      // fall through to the error below
    }
  }
  throw new TypeError(
    `Cannot spawn workers as 'module' must be an absolute URL, such as ` +
      `new URL("./my_workers.ts", import.meta.url): current value is ${describeValue(module)}`,
  );
}

type Phase =
  | "loading"
  | "ready"
  | "running"
  | "finished"
  | "failed"
  | "stopped"
  | "abandoned";

interface Member {
  readonly index: number;
  readonly worker: Worker;
  phase: Phase;
  /** Registry slot reported by the worker, -1 before it joined or after eviction. */
  slot: number;
  /** Asked to stop. */
  killed: boolean;
  /** Ended: finished, failed, stopped or abandoned; its worker is terminated. */
  ended: boolean;
  readonly end: PromiseWithResolvers<void>;
}

class Group<A, R> implements WorkerGroup<R> {
  readonly size: number;
  readonly seed: number;
  readonly results: Promise<R[]>;
  readonly done: Promise<void>;

  readonly #fn: string;
  readonly #heap: SharedHeap | undefined;
  readonly #audit: RetireAudit | undefined;
  readonly #barrier: Barrier;
  readonly #control: Int32Array;
  readonly #members: Member[] = [];
  readonly #values: R[];
  readonly #listeners = new Set<(index: number, value: unknown) => void>();
  readonly #results = Promise.withResolvers<R[]>();
  readonly #done = Promise.withResolvers<void>();
  readonly #timeoutMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: number;
  #failure: unknown = undefined;
  #failed = false;

  constructor(options: SpawnOptions<A>) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot spawn workers as 'options' must be an object: current value is ${
          describeValue(options)
        }`,
      );
    }
    const url = moduleUrl(options.module);
    const { fn, workers, heap, args } = options;
    if (typeof fn !== "string" || fn === "") {
      throw new TypeError(
        `Cannot spawn workers as 'fn' must be a non-empty export name: current value is ${
          describeValue(fn)
        }`,
      );
    }
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
      throw new RangeError(
        `Cannot spawn workers as 'workers' must be an integer from 1 to ${MAX_WORKERS}: ` +
          `current value is ${describeValue(workers)}`,
      );
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeoutMs !== "number" || !(timeoutMs > 0)) {
      throw new RangeError(
        `Cannot spawn workers as 'timeoutMs' must be a positive number: current value is ${
          describeValue(timeoutMs)
        }`,
      );
    }
    if (heap !== undefined && (typeof heap !== "object" || heap === null || !("handle" in heap))) {
      throw new TypeError(
        `Cannot spawn workers as 'heap' must be a SharedHeap: current value is ${
          describeValue(heap)
        }`,
      );
    }
    this.seed = groupSeed(options.seed);
    this.size = workers;
    this.#fn = fn;
    this.#heap = heap;
    const audited = options.retireAudit ?? RETIRE_AUDIT;
    this.#audit = audited && heap !== undefined ? retireAuditOf(heap) : undefined;
    this.#timeoutMs = timeoutMs;
    this.#running = workers;
    this.#values = Array.from({ length: workers }, () => undefined as R);
    this.#barrier = new Barrier(workers);
    const control = new SharedArrayBuffer(workers * 4);
    this.#control = new Int32Array(control);
    this.results = this.#results.promise;
    this.done = this.#done.promise;
    // Awaiting either reports a failure; neither has to be awaited.
    this.results.catch(() => {});
    this.done.catch(() => {});

    const heapHandle = heap?.handle;
    try {
      for (let index = 0; index < workers; index++) {
        const workerArgs = typeof args === "function"
          ? (args as (index: number) => A)(index)
          : args;
        const init: InitMessage = {
          t: "init",
          module: url,
          fn,
          index,
          workers,
          args: workerArgs,
          heap: heapHandle,
          audit: this.#audit,
          barrier: this.#barrier.handle,
          control,
          seed: deriveSeed(this.seed, index),
        };
        const worker = new Worker(ENTRY, { type: "module", name: `${fn} #${index}` });
        const member: Member = {
          index,
          worker,
          phase: "loading",
          slot: -1,
          killed: false,
          ended: false,
          end: Promise.withResolvers<void>(),
        };
        this.#members.push(member);
        worker.onmessage = (event: MessageEvent<ReportMessage>) =>
          this.#onReport(member, event.data);
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          this.#onWorkerError(member, event);
        };
        worker.onmessageerror = () => {
          this.#fail(
            member,
            "run",
            new TypeError("Cannot read a message of the worker as it could not be deserialized"),
          );
        };
        try {
          worker.postMessage(init);
        } catch (error) {
          throw new TypeError(
            `Cannot spawn workers as the arguments of worker ${index} cannot be sent to it: ${
              error instanceof Error ? error.message : String(error)
            }`,
            { cause: error },
          );
        }
      }
    } catch (error) {
      for (const member of this.#members) member.worker.terminate();
      throw error;
    }
    if (timeoutMs !== Infinity) {
      this.#timer = setTimeout(() => this.#onTimeout(), Math.min(timeoutMs, MAX_TIMER_MS));
    }
  }

  terminate(index: number): Promise<void> {
    const member = this.#member(index, "terminate");
    if (!member.ended && !member.killed) {
      this.#kill(member);
      this.#barrier.break();
    }
    return member.end.promise;
  }

  async terminateAll(): Promise<void> {
    let any = false;
    for (const member of this.#members) {
      if (!member.ended && !member.killed) {
        this.#kill(member);
        any = true;
      }
    }
    if (any) this.#barrier.break();
    await Promise.all(this.#members.map((member) => member.end.promise));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.terminateAll();
  }

  onMessage(listener: (index: number, value: unknown) => void): () => void {
    if (typeof listener !== "function") {
      throw new TypeError(
        `Cannot add the message listener as 'listener' must be a function: current value is ${
          describeValue(listener)
        }`,
      );
    }
    // Wrapped so that adding one function twice gives two subscriptions.
    const entry = (index: number, value: unknown) => listener(index, value);
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  messages(): AsyncIterableIterator<WorkerMessage> {
    const queue: WorkerMessage[] = [];
    let wake: (() => void) | undefined;
    let over = this.#running === 0;
    const off = this.onMessage((index, value) => {
      queue.push({ index, value });
      wake?.();
    });
    const finish = () => {
      over = true;
      wake?.();
    };
    this.done.then(finish, finish);
    return (async function* (): AsyncGenerator<WorkerMessage, void, undefined> {
      try {
        for (;;) {
          while (queue.length > 0) yield queue.shift()!;
          if (over) return;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        off();
      }
    })();
  }

  #member(index: number, what: string): Member {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(
        `Cannot ${what} worker as 'index' must be an integer from 0 to ${this.size - 1}: ` +
          `current value is ${describeValue(index)}`,
      );
    }
    return this.#members[index];
  }

  #onReport(member: Member, report: ReportMessage): void {
    if (member.ended) return;
    switch (report.t) {
      case "joined":
        member.slot = report.slot;
        member.phase = "ready";
        return;
      case "started":
        member.phase = "running";
        return;
      case "post":
        for (const listener of [...this.#listeners]) {
          try {
            listener(member.index, report.value);
          } catch (error) {
            this.#failGroup(error);
            return;
          }
        }
        return;
      case "result":
        if (!member.killed) this.#values[member.index] = report.value as R;
        // The worker closed the heap before it posted: nothing to evict.
        member.slot = -1;
        this.#end(member, member.killed ? "stopped" : "finished");
        return;
      case "stopped":
        if (report.evict) this.#evict(member);
        member.slot = -1;
        this.#end(member, "stopped");
        return;
      case "error":
        this.#fail(member, report.phase, report.error);
        return;
    }
  }

  #onWorkerError(member: Member, event: ErrorEvent): void {
    if (member.ended) return;
    const where = event.filename ? ` (at ${event.filename}:${event.lineno}:${event.colno})` : "";
    this.#fail(member, "load", {
      name: event.error instanceof Error ? event.error.name : "Error",
      message: `${event.message}${where}`,
      stack: event.error instanceof Error ? event.error.stack : undefined,
    });
  }

  #fail(member: Member, phase: FailurePhase, error: WorkerErrorInfo | Error): void {
    if (member.ended) return;
    if (member.killed) {
      // Failing while being stopped counts as stopped; the heap is not trusted.
      this.#end(member, "stopped");
      return;
    }
    const failure = new WorkerFailedError({
      index: member.index,
      workers: this.size,
      fn: this.#fn,
      seed: this.seed,
      phase,
      name: error.name,
      message: error.message,
      stack: error.stack,
    });
    this.#failGroup(failure, member);
  }

  #onTimeout(): void {
    this.#timer = undefined;
    const late = this.#members.filter((member) => !member.ended);
    if (late.length === 0) return;
    const describe = (member: Member): string => {
      if (member.killed) {
        return `worker ${member.index} (asked to stop, never reached a checkpoint)`;
      }
      return `worker ${member.index} (${
        {
          loading: "loading its module",
          ready: "waiting at the start barrier",
          running: "running",
        }[member.phase as "loading" | "ready" | "running"] ?? member.phase
      })`;
    };
    const error = new TimeoutError(
      `run "${this.#fn}" in ${this.size} worker${this.size === 1 ? "" : "s"}`,
      this.#timeoutMs,
    );
    error.message += `: ${late.map(describe).join(", ")} had not finished (seed ${this.seed})`;
    this.#failGroup(error);
  }

  /**
   * Fails the run: rejects `results` at once and asks every other worker to
   * stop. Those that stop within STOP_GRACE_MS have their slots evicted, so
   * the heap stays usable; the rest are abandoned, and `done` then rejects.
   */
  #failGroup(error: unknown, culprit?: Member): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = error;
    this.#results.reject(error);
    if (culprit !== undefined) this.#end(culprit, "failed");
    for (const member of this.#members) {
      if (!member.ended && !member.killed) this.#kill(member);
    }
    this.#barrier.break();
    if (this.#running === 0) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      for (const member of this.#members) this.#end(member, "abandoned");
    }, STOP_GRACE_MS);
  }

  #kill(member: Member): void {
    member.killed = true;
    Atomics.store(this.#control, member.index, 1);
    Atomics.notify(this.#control, member.index);
    try {
      member.worker.postMessage({ t: "kill" });
    } catch {
      // The worker is gone already; its report or the timeout will end it.
    }
  }

  #evict(member: Member): void {
    if (member.slot < 0 || this.#heap === undefined) return;
    const slot = member.slot;
    member.slot = -1;
    try {
      this.#heap.evictWorker(slot);
    } catch (error) {
      this.#failGroup(error);
    }
  }

  #end(member: Member, phase: Phase): void {
    if (member.ended) return;
    member.ended = true;
    member.phase = phase;
    member.worker.terminate();
    member.end.resolve();
    if (--this.#running > 0) return;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const twice = this.#audit === undefined ? undefined : doubleRetires(this.#audit);
    if (this.#failed) {
      this.#done.reject(this.#failure);
    } else if (twice !== undefined && twice.count > 0) {
      const error = new Error(
        `${twice.count} blocks were retired twice in the heap of "${this.#fn}" workers ` +
          `(the last at ${twice.pointer}; SABRE_RETIRE_AUDIT=1)`,
      );
      this.#results.reject(error);
      this.#done.reject(error);
    } else {
      this.#results.resolve(this.#values);
      this.#done.resolve();
    }
  }
}

/**
 * Starts `options.workers` workers that each call the export `options.fn` of
 * `options.module` with a {@linkcode WorkerContext}, all at the same moment
 * (they line up on a start barrier first). Returns at once; the
 * {@linkcode WorkerGroup} gives the results, progress messages and early
 * termination. Dispose of it (`await using`, or `terminateAll()` in a
 * `finally`) so that no worker outlives the test.
 *
 * Throws `TypeError` or `RangeError` naming the option when an option is
 * invalid, or when the arguments cannot be sent to a worker.
 *
 * Workers inherit the permissions of the test (`--allow-read` is needed to
 * load them). A module that fails to load is reported through `results` as a
 * {@linkcode WorkerFailedError} of phase `"load"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { spawnWorkers } from "./harness.ts";
 *
 * await using group = spawnWorkers<undefined, number>({
 *   module: new URL("./_fixtures/basic.ts", import.meta.url),
 *   fn: "spinUntilStopped",
 *   workers: 3,
 * });
 * // Wait until worker 1 is busy, then stop it as if it were killed there.
 * for await (const { index } of group.messages()) {
 *   if (index === 1) break;
 * }
 * await group.terminate(1);
 * await group.terminateAll();
 * assert.deepEqual(await group.results, [undefined, undefined, undefined]);
 * ```
 */
export function spawnWorkers<A = undefined, R = unknown>(
  options: SpawnOptions<A>,
): WorkerGroup<R> {
  return new Group<A, R>(options);
}

/**
 * Spawns the workers, waits for their results in index order and stops
 * every worker in all cases, also when one fails or the run times out. See
 * {@linkcode spawnWorkers} for the options and what the workers see.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runWorkers } from "./harness.ts";
 *
 * const results = await runWorkers<{ id: number }, string>({
 *   module: new URL("./_fixtures/basic.ts", import.meta.url),
 *   fn: "echo",
 *   workers: 3,
 *   args: (index) => ({ id: index * 10 }),
 * });
 * assert.deepEqual(results, ["0:0", "1:10", "2:20"]);
 * ```
 */
export async function runWorkers<A = undefined, R = unknown>(
  options: SpawnOptions<A>,
): Promise<R[]> {
  const group = spawnWorkers<A, R>(options);
  try {
    return await group.results;
  } finally {
    await group.terminateAll();
  }
}
