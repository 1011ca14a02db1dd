/**
 * A plain worker (no harness) that exercises a Barrier, for barrier_test.ts.
 *
 * It receives a {@linkcode BarrierJob}, runs it and posts a
 * {@linkcode BarrierReport}.
 *
 * @module
 */

import { Barrier, type BarrierHandle } from "../barrier.ts";

/** What the test asks a worker to do. */
export interface BarrierJob {
  /** The barrier to attach. */
  readonly handle: BarrierHandle;
  /** Index of this worker. */
  readonly index: number;
  /**
   * `"generations"`: run `generations` phases, counting arrivals and leaders.
   * `"once"`: wait once and report.
   */
  readonly mode: "generations" | "once";
  /** Phases to run in `"generations"` mode. */
  readonly generations: number;
  /** Int32 words: [0] arrivals, then one leader count per generation. */
  readonly counters: SharedArrayBuffer;
  /** Passed to `wait`. */
  readonly timeoutMs?: number;
}

/** What a worker reports back. */
export interface BarrierReport {
  /** Whether the job ran to the end. */
  readonly ok: boolean;
  /** Problems seen, or the error's name and message. */
  readonly detail: string;
}

interface Scope {
  onmessage: ((event: MessageEvent<BarrierJob>) => void) | null;
  postMessage(message: BarrierReport): void;
}

const scope = globalThis as unknown as Scope;

function runGenerations(job: BarrierJob, barrier: Barrier): string {
  const counters = new Int32Array(job.counters);
  const parties = barrier.parties;
  const problems: string[] = [];
  for (let gen = 0; gen < job.generations; gen++) {
    Atomics.add(counters, 0, 1);
    const leader = barrier.wait(job.timeoutMs);
    if (leader) Atomics.add(counters, 1 + gen, 1);
    // Every arrival of this generation happened before any wait returned; at
    // most the other parties can already have arrived in the next one.
    const seen = Atomics.load(counters, 0);
    const low = (gen + 1) * parties;
    if (seen < low || seen > low + parties - 1) {
      problems.push(
        `generation ${gen}: ${seen} arrivals seen, expected ${low} to ${low + parties - 1}`,
      );
    }
  }
  return problems.join("; ");
}

scope.onmessage = (event) => {
  const job = event.data;
  try {
    const barrier = Barrier.attach(job.handle);
    if (job.mode === "generations") {
      const problems = runGenerations(job, barrier);
      scope.postMessage({ ok: problems === "", detail: problems });
    } else {
      const leader = barrier.wait(job.timeoutMs);
      scope.postMessage({ ok: true, detail: leader ? "leader" : "follower" });
    }
  } catch (error) {
    const e = error as Error;
    scope.postMessage({ ok: false, detail: `${e.name}: ${e.message}` });
  }
};
