/**
 * The module every harness worker starts with. It receives an `init` message
 * from {@linkcode spawnWorkers}, imports the test module, attaches and joins
 * the heap, waits on the start barrier, runs the worker function, closes the
 * heap and posts the result. It catches everything and reports it.
 *
 * Stopping. `Worker.terminate()` in Deno only takes effect when the worker
 * returns to its event loop: a worker that runs JavaScript without yielding,
 * or is parked in `Atomics.wait`, keeps running. So the parent asks first, by
 * setting this worker's word in the control buffer (and posting `kill` for a
 * worker idle in its event loop). The worker stops at its next checkpoint:
 *
 * - outside the worker function (loading, at the start barrier, after it
 *   returned or threw), it closes the heap and returns to its event loop,
 *   where the parent's `terminate()` ends it;
 * - inside the worker function (`ctx.checkpoint()`, `ctx.post()`,
 *   `ctx.hang()`, or a `kill` message while an async function awaits), it
 *   dies on the spot: it reports that its slot must be evicted and calls
 *   `self.close()`, which in Deno ends the worker at once, without
 *   unwinding. No `finally` block runs, no lock is released, the heap is not
 *   touched again: to the other workers it was killed at that point.
 *
 * @module
 */

import { Barrier, type BarrierHandle } from "./barrier.ts";
import {
  type FailurePhase,
  seededRandom,
  type WorkerContext,
  type WorkerErrorInfo,
} from "./harness.ts";
import type { SharedHeap, SharedHeapHandle } from "../memory/mod.ts";
import type { RetireAudit } from "./retire_audit.ts";

/** First message of the parent. */
export interface InitMessage {
  readonly t: "init";
  readonly module: string;
  readonly fn: string;
  readonly index: number;
  readonly workers: number;
  readonly args: unknown;
  readonly heap: SharedHeapHandle | undefined;
  /** The heap's retire audit, when the parent runs one (SABRE_RETIRE_AUDIT=1). */
  readonly audit: RetireAudit | undefined;
  readonly barrier: BarrierHandle;
  /** Int32 word per worker: non-zero once the parent asked that worker to stop. */
  readonly control: SharedArrayBuffer;
  readonly seed: number;
}

/** Later message of the parent: stop now if the worker function is suspended. */
export interface KillMessage {
  readonly t: "kill";
}

/** Messages a worker posts to the parent, in this order. */
export type ReportMessage =
  | { readonly t: "joined"; readonly slot: number }
  | { readonly t: "started" }
  | { readonly t: "post"; readonly value: unknown }
  | { readonly t: "result"; readonly value: unknown }
  | { readonly t: "error"; readonly phase: FailurePhase; readonly error: WorkerErrorInfo }
  | { readonly t: "stopped"; readonly evict: boolean };

interface WorkerScope {
  onmessage: ((event: MessageEvent<InitMessage | KillMessage>) => void) | null;
  postMessage(message: ReportMessage): void;
  close(): void;
  addEventListener(
    type: "error" | "unhandledrejection",
    listener: (event: Event & { error?: unknown; reason?: unknown; message?: string }) => void,
  ): void;
}

const scope = globalThis as unknown as WorkerScope;

type Stage = "idle" | "loading" | "start" | "running" | "done" | "dead";
let stage: Stage = "idle";
let control: Int32Array | undefined;
let index = -1;
let heap: SharedHeap | undefined;
let joined = false;
let closed = false;
let reported = false;

function killed(): boolean {
  return control !== undefined && Atomics.load(control, index) !== 0;
}

function send(message: ReportMessage): void {
  scope.postMessage(message);
}

function errorInfo(error: unknown): WorkerErrorInfo {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, stack: error.stack };
  }
  if (typeof error === "object" && error !== null && "message" in error) {
    const e = error as { name?: unknown; message?: unknown; stack?: unknown };
    return {
      name: String(e.name ?? "Error"),
      message: String(e.message),
      stack: typeof e.stack === "string" ? e.stack : undefined,
    };
  }
  let text: string;
  try {
    text = typeof error === "string" ? JSON.stringify(error) : String(error);
  } catch {
    text = Object.prototype.toString.call(error);
  }
  return { name: "a thrown non-Error value", message: text, stack: undefined };
}

/** Reports the first failure only; later ones are consequences. */
function fail(phase: FailurePhase, error: unknown): void {
  if (reported) return;
  reported = true;
  stage = "done";
  try {
    send({ t: "error", phase, error: errorInfo(error) });
  } catch (sendError) {
    send({ t: "error", phase, error: errorInfo(sendError) });
  }
}

/** Leaves the registry; true when the slot is released (or was never taken). */
function closeHeap(): boolean {
  if (heap === undefined || closed) return true;
  try {
    heap.close();
    closed = true;
    return true;
  } catch {
    return false;
  }
}

/** Stops outside the worker function: nothing is held, so leave cleanly. */
function stopCleanly(): void {
  if (reported) return;
  reported = true;
  stage = "done";
  const released = closeHeap();
  send({ t: "stopped", evict: joined && !released });
}

/** Stops inside the worker function: dies here, without unwinding the stack. */
function die(): never {
  if (!reported) {
    reported = true;
    stage = "dead";
    send({ t: "stopped", evict: joined && !closed });
  }
  // Deno ends a worker inside close(): the termination cannot be caught and
  // skips every finally block. Park for good should it ever return.
  scope.close();
  const word = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(word, 0, 0);
}

function checkpoint(): void {
  if (killed()) die();
}

/**
 * The barrier as the worker function sees it: a wait that fails because the
 * parent broke the barrier to stop this worker dies there, like any other
 * checkpoint, instead of unwinding through the function.
 */
function stoppable(barrier: Barrier): Barrier {
  const wait = (timeoutMs?: number): boolean => {
    try {
      return barrier.wait(timeoutMs);
    } catch (error) {
      checkpoint();
      throw error;
    }
  };
  const waitAsync = async (timeoutMs?: number): Promise<boolean> => {
    try {
      return await barrier.waitAsync(timeoutMs);
    } catch (error) {
      checkpoint();
      throw error;
    }
  };
  return new Proxy(barrier, {
    get(target, key) {
      if (key === "wait") return wait;
      if (key === "waitAsync") return waitAsync;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function makeContext(init: InitMessage, barrier: Barrier): WorkerContext<unknown> {
  const random = seededRandom(init.seed);
  const prefix = `[worker ${init.index}]`;
  const words = control!;
  return {
    index: init.index,
    workers: init.workers,
    args: init.args,
    heap,
    seed: init.seed,
    barrier: stoppable(barrier),
    random,
    randomInt(bound: number): number {
      if (!Number.isInteger(bound) || bound < 1 || bound > 0x100000000) {
        throw new RangeError(
          `Cannot draw a random integer as 'bound' must be an integer from 1 to 2^32: ` +
            `current value is ${String(bound)}`,
        );
      }
      return Math.floor(random() * bound);
    },
    log(...data: unknown[]): void {
      console.log(prefix, ...data);
    },
    post(value: unknown): void {
      checkpoint();
      send({ t: "post", value });
    },
    checkpoint,
    hang(): never {
      for (;;) {
        checkpoint();
        Atomics.wait(words, init.index, 0);
      }
    },
  };
}

async function run(init: InitMessage): Promise<void> {
  stage = "loading";
  index = init.index;
  control = new Int32Array(init.control);
  let fn: (ctx: WorkerContext<unknown>) => unknown;
  let barrier: Barrier;
  try {
    barrier = Barrier.attach(init.barrier);
    const module: Record<string, unknown> = await import(init.module);
    const exported = module[init.fn];
    if (typeof exported !== "function") {
      const names = Object.keys(module).filter((k) => typeof module[k] === "function");
      throw new TypeError(
        `Cannot run worker function "${init.fn}" as the module exports no function of that name` +
          ` (it exports ${names.length > 0 ? names.map((n) => `"${n}"`).join(", ") : "none"}): ` +
          `current value is ${typeof exported}`,
      );
    }
    fn = exported as typeof fn;
    if (init.heap !== undefined) {
      const memory = await import("../memory/mod.ts");
      heap = memory.SharedHeap.attach(init.heap);
      if (init.audit !== undefined) {
        const { installRetireAudit } = await import("./retire_audit.ts");
        installRetireAudit(heap, init.audit);
      }
      const slot = heap.join();
      joined = true;
      send({ t: "joined", slot });
    }
  } catch (error) {
    if (killed()) return stopCleanly();
    closeHeap();
    return fail("load", error);
  }

  if (killed()) return stopCleanly();
  stage = "start";
  try {
    barrier.wait();
  } catch (error) {
    if (killed()) return stopCleanly();
    closeHeap();
    return fail("start", error);
  }
  if (killed()) return stopCleanly();

  const ctx = makeContext(init, barrier);
  send({ t: "started" });
  stage = "running";
  let value: unknown;
  try {
    value = await fn(ctx);
  } catch (error) {
    if (stage !== "running") return; // an uncaught error was already reported
    if (killed()) return stopCleanly();
    // Leave the registry so the slot is not lost; the run failed anyway.
    closeHeap();
    return fail("run", error);
  }
  if (stage !== "running") return;
  if (killed()) return stopCleanly();
  stage = "done";
  if (heap !== undefined && !closed) {
    try {
      heap.close();
      closed = true;
    } catch (error) {
      return fail("close", error);
    }
  }
  try {
    send({ t: "result", value });
    reported = true;
  } catch (error) {
    fail("result", error);
  }
}

function onUncaught(error: unknown): void {
  if (stage === "dead" || reported) return;
  if (killed() && stage !== "running") return stopCleanly();
  if (killed()) die();
  fail(stage === "running" ? "run" : stage === "start" ? "start" : "load", error);
}

scope.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  onUncaught(event.reason);
});
scope.addEventListener("error", (event) => {
  event.preventDefault();
  onUncaught(event.error ?? new Error(String(event.message)));
});

scope.onmessage = (event) => {
  const message = event.data;
  if (message.t === "init") {
    if (stage !== "idle") return;
    run(message).catch((error) => onUncaught(error));
  } else if (message.t === "kill") {
    // Delivered only when the event loop is free: the worker function, if it
    // runs, is suspended at an await. Stop it there.
    if (stage === "running") die();
  }
};
