/**
 * A contention harness for `deno bench`: W workers, started once per suite
 * through `testing/harness.ts`, run fixed batches of operations on command,
 * and every bench iteration is one batch across all of them.
 *
 * ## How a batch runs
 *
 * The parent and the workers share a small control buffer. Each worker runs
 * {@linkcode serve}: it imports the scenario module, calls its setup export
 * once (which attaches the shared objects and returns the table of
 * scenarios), reports ready, and then loops: park on the `GEN` word until the
 * parent bumps it, run batch `GEN` of the scenario the parent named, count
 * itself in `DONE`, and park again.
 *
 * A batch has measured workers (the first `measured` indices), which run
 * `ops` operations each, and background workers (the rest), which run until
 * the parent ends the batch: a writer beside measured readers, say. The
 * parent bumps `GEN`, waits until the measured workers are done, raises
 * `END` (and notifies it, which wakes a background worker sleeping through
 * {@linkcode Batch.sleep}), then waits until every worker is done. The bench
 * name ends in `(xN)` with N = measured workers × ops, so `bench/report.ts`
 * divides the batch time into time per operation, and throughput is N over
 * the batch time.
 *
 * ## Waiting in the parent
 *
 * The parent either parks with `Atomics.wait` inside a sync bench function,
 * or awaits `Atomics.waitAsync` inside an async one.
 * {@linkcode ContentionSuite.benchOverhead} measures both on an empty batch
 * (`latch_bench.ts` registers it). The sync form costs less. On a 2-core
 * machine an empty batch took about 0.3 µs with one worker (which polls
 * between batches, a core being free) against 4–5 µs for the async form,
 * and 13–60 µs with two workers (which park) against 20–75 µs. A parked
 * `Atomics.wait` returns straight from the futex, while a `waitAsync`
 * resolution waits for an event-loop turn, and the loop needs a timer to
 * stay alive meanwhile (a pending `waitAsync` does not keep it alive). So
 * benches wait synchronously unless they ask otherwise. Either way the cost
 * is fixed per batch; batches of milliseconds make it a few percent.
 *
 * `Atomics.waitAsync` is captured when this module is evaluated, because the
 * `multithreading` package replaces it when imported (with a version that
 * keeps the event loop busy with `setImmediate`). Import this module before
 * that package.
 *
 * ## Stopping
 *
 * Deno's `Worker.terminate()` interrupts neither running JavaScript nor a
 * parked `Atomics.wait`. So idle workers park in slices of
 * {@linkcode IDLE_SLICE_MS} and pass a harness checkpoint between slices, and
 * a suite stops them cooperatively: {@linkcode ContentionSuite.stop} raises
 * `STOP` and wakes them, each returns from {@linkcode serve}, and the
 * harness terminates it once its result arrives. A suite closes itself on
 * the `beforeunload` event, which `deno bench` dispatches after the last
 * bench of the file, so no worker outlives the run.
 *
 * Not under `--v8-flags=--harmony-struct` (which `Atomics.Mutex` needs):
 * with that flag, Deno 2.9.6 crashes (SIGSEGV) in most runs that use
 * workers, mid-run or when they end. {@linkcode sharedStructsEnabled} tells
 * bench files to leave their contention suites out then.
 *
 * ## Failures
 *
 * A scenario that throws (a failed correctness check, say) records the error
 * message in the control buffer and still counts itself done, so the parent
 * wakes, and the bench fails with that message instead of hanging. Every
 * later batch of the suite fails at once, since that worker has left.
 *
 * @module
 */

import { SharedHeap } from "../memory/mod.ts";
import { spawnWorkers, type WorkerContext, type WorkerGroup } from "../testing/harness.ts";

/** Captured before the `multithreading` package can replace it (see the module doc). */
const nativeWaitAsync = Atomics.waitAsync;
const atomicsPause = (Atomics as unknown as { pause?: (n?: number) => void }).pause;
const pause: () => void = typeof atomicsPause === "function" ? () => atomicsPause() : () => {};

// Int32 indices into the control buffer. Words written by different parties
// sit on different 64-byte lines.
/** Batch number; the parent bumps it to start a batch, idle workers park on it. */
const GEN = 0;
/** Scenario index of the current batch. */
const SCENARIO = 1;
/** Operations per measured worker in the current batch. */
const OPS = 2;
/** How many workers (the lowest indices) are measured in the current batch. */
const MEASURED = 3;
/** Non-zero once the suite is stopping. */
const STOP = 4;
/** Workers done with the current batch; the parent parks on it. */
const DONE = 16;
/** Non-zero once the measured workers are done: background workers finish. */
const END = 32;
/** 1 + index of the first worker whose scenario threw; 0 while none has. */
const FAILED = 48;
/** Length in bytes of the UTF-8 error message at ERROR_BYTES. */
const ERROR_LENGTH = 49;
const ERROR_BYTES = 256;
const ERROR_CAPACITY = 1024;
const CONTROL_BYTES = ERROR_BYTES + ERROR_CAPACITY;

/**
 * Polls of `GEN` before an idle worker parks, so that back-to-back batches
 * skip the futex. Only while the workers leave a core free: with more
 * threads than cores, a spinning worker takes time from one still working.
 */
const WORKER_SPIN = 2000;
/** An idle worker parks in slices this long, and passes a harness checkpoint between them. */
export const IDLE_SLICE_MS = 250;
/** Default limit for one batch; a batch that takes longer fails its bench. */
const DEFAULT_BATCH_TIMEOUT_MS = 120_000;
/** How long `close()` waits for the workers to return before terminating them. */
const CLOSE_GRACE_MS = 10_000;

/**
 * What a scenario function gets in a worker: one object per worker, updated
 * before each batch.
 */
export interface Batch {
  /** This worker's index, from 0 to `workers - 1`. */
  readonly index: number;
  /** How many workers the suite has. */
  readonly workers: number;
  /** The batch number (the parent's `GEN`), from 1. */
  readonly number: number;
  /** Whether this worker is measured in this batch (else it is a background worker). */
  readonly measured: boolean;
  /** How many workers are measured in this batch (indices 0 to `measuredWorkers - 1`). */
  readonly measuredWorkers: number;
  /** Operations to run: the batch size for a measured worker, 0 for a background one. */
  readonly ops: number;
  /** Whether the parent has ended the batch (every measured worker is done). One Atomics load. */
  ended(): boolean;
  /**
   * Parks this thread for up to `ms` milliseconds on the batch's end word,
   * a word only the parent notifies: it returns at once when the batch ends.
   */
  sleep(ms: number): void;
}

/** Runs one batch in one worker. Throw to fail the bench. */
export type BatchFunction = (batch: Batch) => void;

/** The scenarios a setup export returns, by name. */
export type Scenarios = Readonly<Record<string, BatchFunction>>;

/**
 * The shape of a setup export: called once in each worker with the suite's
 * arguments for that worker; attaches the shared objects and returns the
 * scenarios.
 */
export type ScenarioSetup<A> = (
  args: A,
  ctx: WorkerContext<unknown>,
) => Scenarios | Promise<Scenarios>;

/** Options of {@linkcode ContentionSuite.start}. */
export interface SuiteOptions<A> {
  /** The module that exports the setup, as an absolute URL. */
  module: string | URL;
  /** Name of the setup export (a {@linkcode ScenarioSetup}). */
  setup: string;
  /** How many workers. */
  workers: number;
  /** Arguments for the setup (structured-clonable), or a function from the index to them. */
  args?: A | ((index: number) => A);
  /** Limit for one batch in milliseconds (default 120 000). */
  batchTimeoutMs?: number;
  /** Close the suite on `beforeunload` (default true). */
  closeOnUnload?: boolean;
}

/** How the parent waits for a batch. */
export type ParentWait = "sync" | "async";

/** A bench of a {@linkcode ContentionSuite}: one batch per iteration. */
export interface ContentionBench {
  /** The name, without the `(xN)` suffix, which is added. */
  name: string;
  /** The scenario to run. */
  scenario: string;
  /** Operations per measured worker per batch. */
  ops: number;
  /** How many workers are measured (the lowest indices); default all. */
  measured?: number;
  group?: string;
  baseline?: boolean;
  /** Iterations and warm-up iterations, passed to `Deno.bench`. */
  n?: number;
  warmup?: number;
  /** How the parent waits (default `"sync"`). */
  wait?: ParentWait;
  /** Runs before each batch, outside the timing (reset shared state here). */
  before?: () => void;
  /** Runs after each batch, outside the timing (check results here; throw to fail). */
  after?: () => void;
}

/** Arguments of {@linkcode serve}, as the parent sends them. */
export interface ServeArgs {
  readonly control: SharedArrayBuffer;
  readonly module: string;
  readonly setup: string;
  readonly args: unknown;
}

/** The message a worker posts once its setup is done. */
interface ReadyMessage {
  readonly ready: readonly string[];
}

class BatchState implements Batch {
  readonly index: number;
  readonly workers: number;
  number = 0;
  measured = false;
  measuredWorkers = 0;
  ops = 0;
  readonly #control: Int32Array;

  constructor(control: Int32Array, index: number, workers: number) {
    this.#control = control;
    this.index = index;
    this.workers = workers;
  }

  ended(): boolean {
    return Atomics.load(this.#control, END) !== 0;
  }

  sleep(ms: number): void {
    SharedHeap.releaseReadPins();
    if (ms > 0) Atomics.wait(this.#control, END, 0, ms);
  }
}

/** Parks until `GEN` moves past `seen`; returns the new value. */
function nextBatch(control: Int32Array, seen: number, ctx: WorkerContext<unknown>): number {
  const spins = ctx.workers < navigator.hardwareConcurrency ? WORKER_SPIN : 0;
  for (let spin = 0; spin < spins; spin++) {
    const gen = Atomics.load(control, GEN);
    if (gen !== seen) return gen;
    pause();
  }
  for (;;) {
    const gen = Atomics.load(control, GEN);
    if (gen !== seen) return gen;
    Atomics.wait(control, GEN, seen, IDLE_SLICE_MS);
    ctx.checkpoint();
  }
}

/** Records the first failure's message for the parent. */
function recordFailure(control: Int32Array, index: number, error: unknown): void {
  if (Atomics.compareExchange(control, FAILED, 0, index + 1) !== 0) return;
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const bytes = new Uint8Array(ERROR_CAPACITY);
  const { written } = new TextEncoder().encodeInto(text, bytes);
  new Uint8Array(control.buffer, ERROR_BYTES, ERROR_CAPACITY).set(bytes.subarray(0, written));
  Atomics.store(control, ERROR_LENGTH, written);
}

/**
 * The worker function of every contention suite (run by the harness): set
 * up, report ready, then serve batches until the suite closes. Returns how
 * many batches it ran.
 */
export async function serve(ctx: WorkerContext<ServeArgs>): Promise<number> {
  const control = new Int32Array(ctx.args.control);
  const module: Record<string, unknown> = await import(ctx.args.module);
  const setup = module[ctx.args.setup];
  if (typeof setup !== "function") {
    throw new TypeError(
      `Cannot set up the contention suite as ${ctx.args.module} exports no function ` +
        `"${ctx.args.setup}": current value is ${typeof setup}`,
    );
  }
  const table = await (setup as ScenarioSetup<unknown>)(ctx.args.args, ctx);
  const names = Object.keys(table);
  const functions = names.map((name) => table[name]);
  ctx.post({ ready: names } satisfies ReadyMessage);

  const batch = new BatchState(control, ctx.index, ctx.workers);
  let seen = 0;
  let batches = 0;
  for (;;) {
    seen = nextBatch(control, seen, ctx);
    if (Atomics.load(control, STOP) !== 0) return batches;
    const measuredWorkers = Atomics.load(control, MEASURED);
    batch.number = seen;
    batch.measuredWorkers = measuredWorkers;
    batch.measured = ctx.index < measuredWorkers;
    batch.ops = batch.measured ? Atomics.load(control, OPS) : 0;
    let failure: unknown = undefined;
    try {
      functions[Atomics.load(control, SCENARIO)](batch);
    } catch (error) {
      failure = error;
      recordFailure(control, ctx.index, error);
    }
    batches++;
    // This worker is about to block outside sabre, where gets' read pins
    // would hold back the reclamation of what the others still retire.
    SharedHeap.releaseReadPins();
    const done = Atomics.add(control, DONE, 1) + 1;
    if (failure !== undefined) {
      Atomics.notify(control, DONE);
      throw failure;
    }
    if (done === measuredWorkers || done === ctx.workers) Atomics.notify(control, DONE);
  }
}

/**
 * The parent's side: W workers serving batches, and the benches that drive
 * them.
 */
export class ContentionSuite {
  readonly #group: WorkerGroup<number>;
  readonly #control: Int32Array;
  readonly #scenarios: readonly string[];
  readonly #timeoutMs: number;
  #stopped = false;
  #closing: Promise<void> | undefined;

  private constructor(
    group: WorkerGroup<number>,
    control: Int32Array,
    scenarios: readonly string[],
    timeoutMs: number,
  ) {
    this.#group = group;
    this.#control = control;
    this.#scenarios = scenarios;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Spawns the workers and resolves once every one has run its setup and is
   * ready for batches. Rejects with the worker's error when a setup fails.
   */
  static async start<A>(options: SuiteOptions<A>): Promise<ContentionSuite> {
    const { workers, args } = options;
    if (sharedStructsEnabled()) {
      throw new Error(
        "Cannot start a contention suite under --v8-flags=--harmony-struct: Deno 2.9.6 " +
          "crashes with workers under that flag (check sharedStructsEnabled() first)",
      );
    }
    const module = new URL(options.module).href;
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const group = spawnWorkers<ServeArgs, number>({
      module: import.meta.url,
      fn: "serve",
      workers,
      timeoutMs: Infinity,
      args: (index) => ({
        control,
        module,
        setup: options.setup,
        args: typeof args === "function" ? (args as (index: number) => A)(index) : args,
      }),
    });
    let names: readonly string[] | undefined;
    let ready = 0;
    const allReady = Promise.withResolvers<void>();
    group.onMessage((_index, value) => {
      const message = value as ReadyMessage;
      names ??= message.ready;
      if (++ready === workers) allReady.resolve();
    });
    // A failure before every worker is ready rejects `results`; its success
    // (every worker returned) cannot come first.
    group.results.then(
      () => allReady.reject(new Error("Contention workers returned before they were ready")),
      (error) => allReady.reject(error),
    );
    try {
      await allReady.promise;
    } catch (error) {
      await group.terminateAll();
      throw error;
    }
    const suite = new ContentionSuite(
      group,
      new Int32Array(control),
      names!,
      options.batchTimeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS,
    );
    if (options.closeOnUnload ?? true) {
      globalThis.addEventListener("beforeunload", () => void suite.close(), { once: true });
    }
    return suite;
  }

  /** How many workers the suite has. */
  get workers(): number {
    return this.#group.size;
  }

  /** The scenario names the workers' setup returned. */
  get scenarios(): readonly string[] {
    return this.#scenarios;
  }

  /**
   * Starts a batch of `scenario` without waiting for it: `ops` operations in
   * each of the first `measured` workers (default all), the others in the
   * background until the batch ends. Finish it with `finishBatch` or
   * `finishBatchAsync`.
   */
  startBatch(scenario: string, ops: number, measured: number = this.workers): void {
    const control = this.#control;
    this.#throwIfFailed();
    if (this.#stopped) throw new Error("Cannot start a batch as the suite was stopped");
    const index = this.#scenarios.indexOf(scenario);
    if (index < 0) {
      throw new RangeError(
        `Cannot start a batch as the workers have no scenario "${scenario}" (they have ${
          this.#scenarios.map((name) => `"${name}"`).join(", ")
        })`,
      );
    }
    if (!Number.isInteger(measured) || measured < 1 || measured > this.workers) {
      throw new RangeError(
        `Cannot start a batch as 'measured' must be an integer from 1 to ${this.workers}: ` +
          `current value is ${measured}`,
      );
    }
    Atomics.store(control, DONE, 0);
    Atomics.store(control, END, 0);
    Atomics.store(control, SCENARIO, index);
    Atomics.store(control, OPS, ops);
    Atomics.store(control, MEASURED, measured);
    Atomics.add(control, GEN, 1);
    Atomics.notify(control, GEN);
  }

  /** Blocks (`Atomics.wait`) until the batch started last is done. */
  finishBatch(): void {
    const deadline = performance.now() + this.#timeoutMs;
    this.#waitDone(Atomics.load(this.#control, MEASURED), deadline);
    this.#end();
    this.#waitDone(this.workers, deadline);
    this.#throwIfFailed();
  }

  /** Awaits (`Atomics.waitAsync`) the end of the batch started last. */
  async finishBatchAsync(): Promise<void> {
    const deadline = performance.now() + this.#timeoutMs;
    // A pending waitAsync does not keep the event loop alive; this timer does.
    const keepAlive = setTimeout(() => {}, this.#timeoutMs);
    try {
      await this.#waitDoneAsync(Atomics.load(this.#control, MEASURED), deadline);
      this.#end();
      await this.#waitDoneAsync(this.workers, deadline);
    } finally {
      clearTimeout(keepAlive);
    }
    this.#throwIfFailed();
  }

  /** `startBatch` then `finishBatch`. */
  runBatch(scenario: string, ops: number, measured?: number): void {
    this.startBatch(scenario, ops, measured);
    this.finishBatch();
  }

  /** `startBatch` then `finishBatchAsync`. */
  runBatchAsync(scenario: string, ops: number, measured?: number): Promise<void> {
    this.startBatch(scenario, ops, measured);
    return this.finishBatchAsync();
  }

  /**
   * Registers a `Deno.bench` whose every iteration is one batch. The timing
   * covers the batch only (`before` and `after` run outside it).
   */
  bench(definition: ContentionBench): void {
    const { scenario, ops, before, after } = definition;
    const measured = definition.measured ?? this.workers;
    if (!this.#scenarios.includes(scenario)) {
      throw new RangeError(`Cannot register bench as the workers have no scenario "${scenario}"`);
    }
    const common = {
      name: `${definition.name} (x${ops * measured})`,
      group: definition.group,
      baseline: definition.baseline,
      n: definition.n,
      warmup: definition.warmup,
    };
    // Explicit timers only around before/after: deno bench ignores them (with
    // a warning) when an iteration takes under 10 µs, as an empty batch can.
    const timed = before !== undefined || after !== undefined;
    if (definition.wait === "async") {
      Deno.bench({
        ...common,
        fn: async (b) => {
          before?.();
          if (timed) b.start();
          this.startBatch(scenario, ops, measured);
          await this.finishBatchAsync();
          if (timed) b.end();
          after?.();
        },
      });
    } else {
      Deno.bench({
        ...common,
        fn: (b) => {
          before?.();
          if (timed) b.start();
          this.startBatch(scenario, ops, measured);
          this.finishBatch();
          if (timed) b.end();
          after?.();
        },
      });
    }
  }

  /**
   * Registers two benches of a batch in which no worker does anything: the
   * fixed cost of one batch round trip, with the parent parking in
   * `Atomics.wait` and with it awaiting `Atomics.waitAsync`. The scenario
   * table must have `emptyScenario` (a function that returns at once).
   */
  benchOverhead(group: string, emptyScenario: string): void {
    const w = `${this.workers} worker${this.workers === 1 ? "" : "s"}`;
    this.bench({
      name: `empty batch, ${w}, parent waits with Atomics.wait`,
      group,
      baseline: true,
      scenario: emptyScenario,
      ops: 1,
      measured: 1,
      wait: "sync",
    });
    this.bench({
      name: `empty batch, ${w}, parent awaits Atomics.waitAsync`,
      group,
      scenario: emptyScenario,
      ops: 1,
      measured: 1,
      wait: "async",
    });
  }

  /**
   * Asks the workers to stop, without waiting: raises `STOP` and wakes
   * them. Each returns from `serve` and the harness terminates it when its
   * result arrives (the event loop must run for that). No batch may start
   * afterwards. Idempotent.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const control = this.#control;
    Atomics.store(control, STOP, 1);
    Atomics.add(control, GEN, 1);
    Atomics.notify(control, GEN);
    this.#end();
  }

  /**
   * Stops the workers (`stop()`) and resolves once every one has ended; a
   * worker that has not returned after a grace period is terminated (it
   * stops at its next checkpoint). Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    try {
      await Promise.race([this.#group.done.catch(() => {}), grace]);
    } finally {
      clearTimeout(timer);
      await this.#group.terminateAll();
    }
  }

  #end(): void {
    Atomics.store(this.#control, END, 1);
    Atomics.notify(this.#control, END);
  }

  #waitDone(target: number, deadline: number): void {
    const control = this.#control;
    for (;;) {
      const done = Atomics.load(control, DONE);
      if (done >= target) return;
      this.#throwIfFailed();
      const left = deadline - performance.now();
      if (left <= 0) this.#timedOut();
      Atomics.wait(control, DONE, done, left);
    }
  }

  async #waitDoneAsync(target: number, deadline: number): Promise<void> {
    const control = this.#control;
    for (;;) {
      const done = Atomics.load(control, DONE);
      if (done >= target) return;
      this.#throwIfFailed();
      const left = deadline - performance.now();
      if (left <= 0) this.#timedOut();
      const result = nativeWaitAsync(control, DONE, done, left);
      if (result.async) await result.value;
    }
  }

  #throwIfFailed(): void {
    const control = this.#control;
    const failed = Atomics.load(control, FAILED);
    if (failed === 0) return;
    const length = Atomics.load(control, ERROR_LENGTH);
    const bytes = new Uint8Array(control.buffer, ERROR_BYTES, length).slice();
    throw new Error(
      `Contention worker ${failed - 1} of ${this.workers} failed: ${
        new TextDecoder().decode(bytes)
      }`,
    );
  }

  #timedOut(): never {
    throw new Error(
      `A contention batch took longer than ${this.#timeoutMs} ms: ` +
        `${Atomics.load(this.#control, DONE)} of ${this.workers} workers were done`,
    );
  }
}

/**
 * Whether V8's shared structs (`--v8-flags=--harmony-struct`) are on, as
 * `Atomics.Mutex` shows. Deno 2.9.6 is not stable with workers under that
 * flag, so contention suites should not start then.
 */
export function sharedStructsEnabled(): boolean {
  return typeof (Atomics as unknown as { Mutex?: unknown }).Mutex === "function";
}

/**
 * Worker counts for contention benches: the comma-separated environment
 * variable `name` (such as `SABRE_BENCH_WORKERS=1,2,4,8`), else `fallback`.
 * Needs `--allow-env` to read it; without the permission, `fallback`.
 */
export function workerCounts(name: string, fallback: readonly number[]): number[] {
  let text: string | undefined;
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state === "granted") {
      text = Deno.env.get(name);
    }
  } catch {
    text = undefined;
  }
  if (text === undefined || text.trim() === "") return [...fallback];
  const counts = text.split(",").map((part) => Number(part.trim()));
  for (const count of counts) {
    if (!Number.isInteger(count) || count < 1 || count > 1024) {
      throw new RangeError(
        `Cannot read ${name} as it must list worker counts from 1 to 1024, comma-separated: ` +
          `current value is "${text}"`,
      );
    }
  }
  return counts;
}
