/**
 * Worker side of the contended STM benches (`stm_contention_bench.ts`):
 * random transfers between accounts, done by every worker of the suite at
 * once.
 *
 * Each account set comes twice, both in the same heap and both holding the
 * same total:
 *
 * - `mutex, <n> accounts`: `n` i32 words guarded by one global sabre
 *   `Mutex`; a transfer is `acquire()`, read both accounts, write both,
 *   `release()` (the baseline: what a user does without STM);
 * - `stm, <n> accounts`: `n` i32 `Loc`s; a transfer is one `Xt.commit` of
 *   two `fetchAndAdd`s.
 *
 * Each worker precomputes its own sequence of (from, to, amount) triples
 * from a seed, so both variants run the same transfers; a measured worker
 * runs `batch.ops` of them per batch and a background worker none.
 *
 * @module
 */

import { Mutex, type MutexHandle } from "../latch/mod.ts";
import { SharedHeap, type SharedHeapHandle } from "../memory/mod.ts";
import { Loc, type LocHandle, Xt } from "../stm/mod.ts";
import type { Batch, Scenarios } from "./_contention.ts";
import { seededRandom } from "../testing/harness.ts";

/** Length of each worker's precomputed transfer sequence (a power of two). */
const SEQUENCE_LENGTH = 1 << 16;
const SEQUENCE_MASK = SEQUENCE_LENGTH - 1;
/** Largest amount of one transfer; amounts are 1 to this. */
export const MAX_AMOUNT = 100;

/** One account set, as it crosses to the workers. */
export interface AccountSetArgs {
  /** How many accounts. */
  readonly accounts: number;
  /** The global mutex of the baseline variant. */
  readonly mutex: MutexHandle;
  /** Byte offset in the heap of the baseline's `accounts` i32 words. */
  readonly words: number;
  /** The STM variant's accounts, one Loc each. */
  readonly locs: readonly LocHandle[];
}

/** What the setup of {@linkcode transferScenarios} gets in every worker. */
export interface TransferArgs {
  /** The heap holding every account set. */
  readonly heap: SharedHeapHandle;
  /** The account sets. */
  readonly sets: readonly AccountSetArgs[];
  /** Seed of the transfer sequences; each worker mixes in its index. */
  readonly seed: number;
}

/** Scenario name of the baseline variant over `accounts` accounts. */
export function mutexScenario(accounts: number): string {
  return `mutex, ${accounts} accounts`;
}

/** Scenario name of the STM variant over `accounts` accounts. */
export function stmScenario(accounts: number): string {
  return `stm, ${accounts} accounts`;
}

/**
 * The transfer suite's setup: attaches every account set and returns, for
 * each, the Mutex scenario and the STM scenario.
 */
export function transferScenarios(args: TransferArgs, ctx: { index: number }): Scenarios {
  const heap = SharedHeap.attach(args.heap);
  const table: Record<string, (batch: Batch) => void> = {};
  for (const set of args.sets) {
    const n = set.accounts;
    const random = seededRandom(args.seed + ctx.index * 7919 + n);
    const from = new Int32Array(SEQUENCE_LENGTH);
    const to = new Int32Array(SEQUENCE_LENGTH);
    const amount = new Int32Array(SEQUENCE_LENGTH);
    for (let i = 0; i < SEQUENCE_LENGTH; i++) {
      const a = Math.floor(random() * n);
      // A different account, uniform among the other n - 1.
      const b = (a + 1 + Math.floor(random() * (n - 1))) % n;
      from[i] = a;
      to[i] = b;
      amount[i] = 1 + Math.floor(random() * MAX_AMOUNT);
    }
    let cursor = ctx.index * 4099;

    const mutex = Mutex.attach(set.mutex);
    const words = new Int32Array(heap.sab, set.words, n);
    table[mutexScenario(n)] = (batch) => {
      if (!batch.measured) return;
      let c = cursor;
      for (let i = batch.ops; i > 0; i--) {
        const at = c++ & SEQUENCE_MASK;
        const a = from[at];
        const b = to[at];
        const amt = amount[at];
        mutex.acquire();
        const va = words[a];
        const vb = words[b];
        words[a] = va - amt;
        words[b] = vb + amt;
        mutex.release();
      }
      cursor = c;
    };

    const locs = set.locs.map((handle) => Loc.attach(handle));
    // One transaction function, reading its operands from these variables,
    // so no closure is allocated per transfer.
    let la = locs[0];
    let lb = locs[0];
    let amt = 0;
    const transfer = (xt: Xt) => {
      xt.fetchAndAdd(la, -amt);
      xt.fetchAndAdd(lb, amt);
    };
    table[stmScenario(n)] = (batch) => {
      if (!batch.measured) return;
      let c = cursor;
      for (let i = batch.ops; i > 0; i--) {
        const at = c++ & SEQUENCE_MASK;
        la = locs[from[at]];
        lb = locs[to[at]];
        amt = amount[at];
        Xt.commit(transfer);
      }
      cursor = c;
    };
  }
  return table;
}
