/**
 * Contended STM benches: random transfers between accounts by W workers at
 * once (W = 2 and 4), `Xt.commit` against one global sabre `Mutex` (the
 * baseline, in the same group).
 *
 * - Baseline: the accounts are i32 words in a SharedHeap, all guarded by
 *   one `Mutex` in the same heap; a transfer is `acquire()`, read the two
 *   accounts, write both, `release()`.
 * - STM: the accounts are i32 `Loc`s in the same heap; a transfer is
 *   `Xt.commit((xt) => { xt.fetchAndAdd(a, -amt); xt.fetchAndAdd(b, amt); })`.
 *
 * Both run the same precomputed random transfers (two distinct accounts,
 * amounts 1 to 100), over 64 accounts (moderate contention: two workers'
 * transfers share an account about 6% of the time) and over 8 accounts
 * (high contention: about 46%). Every bench iteration is one batch of
 * {@linkcode TRANSFER_OPS} transfers in each of the W workers (see
 * `_contention.ts`); the name ends in `(xN)`, N = W × ops, so time per
 * transfer is the iteration time over N and the ratios `deno bench` prints
 * are per transfer. After each batch (outside the timing) the parent checks
 * that the accounts still sum to their initial total, and fails the bench
 * if not; the module checks both variants once more when it unloads.
 *
 * Worker counts: `SABRE_BENCH_WORKERS` (comma-separated, default `2,4`). The
 * development machine has 2 cores, so 4 workers oversubscribe it: a worker
 * preempted while holding the Mutex stalls the others, while a preempted
 * STM commit is helped or aborted by the next one.
 *
 * Left out under `--v8-flags=--harmony-struct` (see `sharedStructsEnabled`).
 *
 * Run: `deno bench --allow-read --allow-env bench/stm_contention_bench.ts`
 *
 * @module
 */

// First: it captures Atomics.waitAsync before any peer package can replace it.
import { ContentionSuite, sharedStructsEnabled, workerCounts } from "./_contention.ts";
import {
  type AccountSetArgs,
  mutexScenario,
  stmScenario,
  type TransferArgs,
} from "./_stm_contention_workers.ts";
import { Mutex } from "../latch/mod.ts";
import { SharedHeap } from "../memory/mod.ts";
import { Loc } from "../stm/mod.ts";

/** Transfers per worker per batch. */
export const TRANSFER_OPS = 50_000;
/** Account counts, one group per count and worker count. */
export const ACCOUNT_COUNTS = [64, 8] as const;
/** Initial balance of every account. */
export const INITIAL_BALANCE = 1_000_000;
const ITERATIONS = { n: 30, warmup: 3 };

/** One account set in the parent: both variants, and how to total them. */
interface AccountSet {
  readonly args: AccountSetArgs;
  readonly words: Int32Array;
  readonly locs: readonly Loc[];
  readonly total: number;
}

function checkTotal(what: string, seen: number, expected: number): void {
  if (seen !== expected) {
    throw new Error(`${what}: the accounts sum to ${seen} instead of ${expected}`);
  }
}

function mutexTotal(set: AccountSet): number {
  let sum = 0;
  for (let i = 0; i < set.words.length; i++) sum += set.words[i];
  return sum;
}

function stmTotal(set: AccountSet): number {
  let sum = 0;
  for (const loc of set.locs) sum += loc.get();
  return sum;
}

function checkSet(set: AccountSet): void {
  const n = set.args.accounts;
  checkTotal(`Mutex, ${n} accounts`, mutexTotal(set), set.total);
  checkTotal(`STM, ${n} accounts`, stmTotal(set), set.total);
}

const workerSets = sharedStructsEnabled() ? [] : workerCounts("SABRE_BENCH_WORKERS", [2, 4]);
const checked: AccountSet[] = [];
for (const workers of workerSets) {
  // A heap per suite, so that W = 4 starts from fresh balances and cells.
  const heap = SharedHeap.create({ maxBytes: 256 << 20 });
  const sets: AccountSet[] = ACCOUNT_COUNTS.map((accounts) => {
    const mutex = Mutex.create(heap);
    const offset = heap.allocateZeroed(accounts * 4);
    const words = new Int32Array(heap.sab, offset, accounts);
    words.fill(INITIAL_BALANCE);
    const locs = Loc.makeArray(heap, accounts, INITIAL_BALANCE, { kind: "i32" });
    return {
      args: { accounts, mutex: mutex.handle, words: offset, locs: locs.map((loc) => loc.handle) },
      words,
      locs,
      total: accounts * INITIAL_BALANCE,
    };
  });
  checked.push(...sets);
  const args: TransferArgs = { heap: heap.handle, sets: sets.map((set) => set.args), seed: 4242 };
  const suite = await ContentionSuite.start({
    module: new URL("./_stm_contention_workers.ts", import.meta.url),
    setup: "transferScenarios",
    workers,
    args,
  });
  const w = `${workers} workers`;
  for (const set of sets) {
    const n = set.args.accounts;
    const group = `contended transfers, ${n} accounts, ${w}`;
    suite.bench({
      name: `one global Mutex: acquire, 2 i32 updates, release; ${w}`,
      group,
      baseline: true,
      scenario: mutexScenario(n),
      ops: TRANSFER_OPS,
      ...ITERATIONS,
      // The workers' DONE increments are Atomics, so their plain account
      // writes happen-before these reads.
      after: () => checkTotal(`Mutex, ${n} accounts, ${w}`, mutexTotal(set), set.total),
    });
    suite.bench({
      name: `Xt.commit: fetchAndAdd on 2 i32 Locs; ${w}`,
      group,
      scenario: stmScenario(n),
      ops: TRANSFER_OPS,
      ...ITERATIONS,
      after: () => checkTotal(`STM, ${n} accounts, ${w}`, stmTotal(set), set.total),
    });
  }
}

// The final check, once every bench has run (the workers are idle by then).
globalThis.addEventListener("unload", () => {
  for (const set of checked) checkSet(set);
});
