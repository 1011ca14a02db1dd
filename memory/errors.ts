/**
 * Typed errors shared by every sabre module.
 *
 * Each message says what was wrong and which value was seen, so that a log line
 * alone is enough to find the cause.
 *
 * @module
 */

/**
 * Base class of every error that sabre throws on purpose.
 *
 * @example
 * ```ts
 * import { SabreError, SharedHeap } from "@sabre/sabre";
 * try {
 *   SharedHeap.attach({} as never);
 * } catch (e) {
 *   console.assert(e instanceof SabreError);
 * }
 * ```
 */
export class SabreError extends Error {
  /**
   * Creates the error with a message that names the bad value; `options.cause`
   * is kept as in `Error`. Its `name` is that of the class constructed.
   *
   * @example
   * ```ts
   * import { SabreError } from "@sabre/sabre";
   * const e = new SabreError("Cannot use x as it is closed", { cause: "test" });
   * console.assert(e.name === "SabreError" && e.cause === "test" && e instanceof Error);
   * ```
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The heap reached its `maxBytes` and cannot hand out the requested block.
 *
 * The heap and every structure in it stay consistent and usable: free some
 * memory, or create the heap with a larger `maxBytes`.
 *
 * @example
 * ```ts
 * import { HeapExhaustedError, SharedHeap } from "@sabre/sabre";
 * const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 1 << 20 });
 * try {
 *   heap.allocate(4 << 20);
 * } catch (e) {
 *   console.assert(e instanceof HeapExhaustedError);
 * }
 * ```
 */
export class HeapExhaustedError extends SabreError {
  /**
   * Bytes that were requested.
   *
   * @example
   * ```ts
   * import { HeapExhaustedError, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 1 << 20 });
   * let caught: unknown;
   * try {
   *   heap.allocate(4 << 20);
   * } catch (e) {
   *   caught = e;
   * }
   * console.assert(caught instanceof HeapExhaustedError && caught.requestedBytes === 4 << 20);
   * ```
   */
  readonly requestedBytes: number;
  /**
   * The heap's `maxBytes`.
   *
   * @example
   * ```ts
   * import { HeapExhaustedError, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create({ initialBytes: 1 << 20, maxBytes: 1 << 20 });
   * let caught: unknown;
   * try {
   *   heap.allocate(4 << 20);
   * } catch (e) {
   *   caught = e;
   * }
   * console.assert(caught instanceof HeapExhaustedError && caught.maxBytes === heap.maxBytes);
   * ```
   */
  readonly maxBytes: number;
  /**
   * Creates the error for a request of `requestedBytes` in a heap capped at
   * `maxBytes`; a non-empty `detail` is appended to the message.
   *
   * @example
   * ```ts
   * import { HeapExhaustedError } from "@sabre/sabre";
   * const e = new HeapExhaustedError(256, 1 << 20, "all pages in use");
   * console.assert(e.requestedBytes === 256 && e.message.endsWith(": all pages in use"));
   * ```
   */
  constructor(requestedBytes: number, maxBytes: number, detail = "") {
    super(
      `Cannot allocate ${requestedBytes} bytes as the heap has reached its maxBytes of ${maxBytes}` +
        (detail ? `: ${detail}` : ""),
    );
    this.requestedBytes = requestedBytes;
    this.maxBytes = maxBytes;
  }
}

/**
 * A handle passed to `attach()` does not describe what it claims: wrong kind,
 * missing fields, a buffer that is not a sabre heap, or a layout version this
 * build cannot read.
 *
 * @example
 * ```ts
 * import { HandleError, SharedHeap } from "@sabre/sabre";
 * try {
 *   SharedHeap.attach({ kind: "sabre.SharedHeap", version: 1, sab: new SharedArrayBuffer(8), offset: 0 });
 * } catch (e) {
 *   console.assert(e instanceof HandleError);
 * }
 * ```
 */
export class HandleError extends SabreError {}

/**
 * A blocking call did not succeed within its `timeoutMs`.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@sabre/sabre";
 * const e = new TimeoutError("lock", 10);
 * console.assert(e.timeoutMs === 10);
 * ```
 */
export class TimeoutError extends SabreError {
  /**
   * The timeout that expired, in milliseconds.
   *
   * @example
   * ```ts
   * import { Mutex, TimeoutError } from "@sabre/sabre";
   * const mutex = Mutex.create();
   * using _held = mutex.lock();
   * let caught: unknown;
   * try {
   *   mutex.lock({ timeoutMs: 5 });
   * } catch (e) {
   *   caught = e;
   * }
   * console.assert(caught instanceof TimeoutError && caught.timeoutMs === 5);
   * ```
   */
  readonly timeoutMs: number;
  /**
   * Creates the error for `operation`, a verb phrase ("lock Mutex"), which
   * gave up after `timeoutMs`.
   *
   * @example
   * ```ts
   * import { TimeoutError } from "@sabre/sabre";
   * const e = new TimeoutError("read config", 50);
   * console.assert(e.message === "Cannot read config as it timed out after 50 ms");
   * ```
   */
  constructor(operation: string, timeoutMs: number) {
    super(`Cannot ${operation} as it timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A lock or slot was held by a worker that has since been evicted from the
 * heap's registry (terminated without releasing it). Reserved for robust
 * lock variants: sabre's locks are not robust today, and nothing in sabre
 * throws it yet (a lock whose holder died stays held; use `timeoutMs`).
 *
 * @example
 * ```ts
 * import { OwnerDiedError } from "@sabre/sabre";
 * const e = new OwnerDiedError("Mutex", 3);
 * console.assert(e.ownerSlot === 3);
 * ```
 */
export class OwnerDiedError extends SabreError {
  /**
   * Registry slot of the worker that died while holding it.
   *
   * @example
   * ```ts
   * import { OwnerDiedError } from "@sabre/sabre";
   * const e = new OwnerDiedError("Mutex", 5);
   * console.assert(e.ownerSlot === 5);
   * ```
   */
  readonly ownerSlot: number;
  /**
   * Creates the error for `what`, last held by the worker in `ownerSlot`.
   *
   * @example
   * ```ts
   * import { OwnerDiedError, SabreError } from "@sabre/sabre";
   * const e = new OwnerDiedError("the queue lock", 2);
   * console.assert(e instanceof SabreError && e.message.includes("worker slot 2"));
   * ```
   */
  constructor(what: string, ownerSlot: number) {
    super(`Cannot use ${what} as its owner in worker slot ${ownerSlot} died while holding it`);
    this.ownerSlot = ownerSlot;
  }
}

/**
 * Every worker slot of the heap's registry is taken.
 *
 * Close heaps you no longer use in a worker (`heap.close()`), evict terminated
 * workers (`heap.evictWorker(slot)`), or create the heap with a larger
 * `maxWorkers`.
 *
 * @example
 * ```ts
 * import { WorkerLimitError } from "@sabre/sabre";
 * const e = new WorkerLimitError(64);
 * console.assert(e.maxWorkers === 64);
 * ```
 */
export class WorkerLimitError extends SabreError {
  /**
   * The heap's `maxWorkers`.
   *
   * @example
   * ```ts
   * import { WorkerLimitError } from "@sabre/sabre";
   * const e = new WorkerLimitError(16);
   * console.assert(e.maxWorkers === 16);
   * ```
   */
  readonly maxWorkers: number;
  /**
   * Creates the error for a registry of `maxWorkers` slots.
   *
   * @example
   * ```ts
   * import { WorkerLimitError } from "@sabre/sabre";
   * const e = new WorkerLimitError(4);
   * console.assert(e.name === "WorkerLimitError" && e.message.includes("its 4 worker slots"));
   * ```
   */
  constructor(maxWorkers: number) {
    super(
      `Cannot join the heap as all of its ${maxWorkers} worker slots are taken: ` +
        `close unused heaps, evict terminated workers, or raise 'maxWorkers'`,
    );
    this.maxWorkers = maxWorkers;
  }
}

/**
 * A call on a structure object after `destroy()`: the structure's memory is
 * back in the heap, and may belong to another structure now. A second
 * `destroy()` throws it too, whichever worker destroyed the structure first.
 *
 * Each object knows that its own `destroy()` ran. An object that another
 * worker attached to the same structure learns it only where it checks the
 * structure's tag word (attach, destroy, and calls about to block), and not
 * once the heap has reused the memory: sharing the end of a structure's life
 * between workers is the program's to order.
 *
 * @example
 * ```ts
 * import { DestroyedError, Mutex, SharedHeap } from "@sabre/sabre";
 * const mutex = Mutex.create(SharedHeap.create());
 * mutex.destroy();
 * try {
 *   mutex.lock();
 * } catch (e) {
 *   console.assert(e instanceof DestroyedError && e.structure === "Mutex");
 * }
 * ```
 */
export class DestroyedError extends SabreError {
  /**
   * The kind of structure that was destroyed ("Mutex", "HashMap").
   *
   * @example
   * ```ts
   * import { DestroyedError } from "@sabre/sabre";
   * console.assert(new DestroyedError("Queue").structure === "Queue");
   * ```
   */
  readonly structure: string;
  /**
   * Creates the error for a call on `structure`; with `operation` "destroy",
   * for a second destroy.
   *
   * @example
   * ```ts
   * import { DestroyedError } from "@sabre/sabre";
   * console.assert(
   *   new DestroyedError("SeqLock", "destroy").message ===
   *     "Cannot destroy SeqLock as it was destroyed already",
   * );
   * ```
   */
  constructor(structure: string, operation: "use" | "destroy" = "use") {
    super(
      operation === "destroy"
        ? `Cannot destroy ${structure} as it was destroyed already`
        : `Cannot use ${structure} as it was destroyed: its memory may belong to another structure now`,
    );
    this.structure = structure;
  }
}

/**
 * Formats a value for an error message: strings quoted, long ones cut.
 *
 * @example
 * ```ts
 * import { describeValue } from "@sabre/sabre";
 * console.assert(describeValue("x") === '"x"' && describeValue(1n) === "1n");
 * ```
 */
export function describeValue(value: unknown): string {
  if (typeof value === "string") {
    const cut = value.length > 40 ? value.slice(0, 40) + "…" : value;
    return JSON.stringify(cut) + (value.length > 40 ? ` (length ${value.length})` : "");
  }
  if (typeof value === "bigint") return `${value}n`;
  if (value === null) return "null";
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  if (Array.isArray(value)) return `Array(${value.length})`;
  if (typeof value === "object") return Object.prototype.toString.call(value);
  if (typeof value === "function") return "a function";
  if (Object.is(value, -0)) return "-0";
  return String(value);
}
