/**
 * Op: primitive multi-word operations, kcas's `Op`. A list of CAS entries
 * (compare and set) and CMP entries (compare only) is attempted atomically:
 * either every location holds its expected value at one instant and every
 * CAS takes effect at that instant, or nothing changes.
 *
 * @module
 */

import { describeValue } from "../memory/mod.ts";
import { pause } from "../latch/mod.ts";
import { type CommitMode, type Domain, orderByAddress, recoverFromFullHeap } from "./_kcas.ts";
import { checkValue, Loc, sameValueZero } from "./loc.ts";

let makeEntry: (loc: Loc, expected: number, desired: number, isCmp: boolean) => OpEntry;

/**
 * One entry of {@linkcode Op.atomically}, made by {@linkcode Op.cas} or
 * {@linkcode Op.cmp}.
 *
 * @example
 * ```ts
 * import { Loc, Op, type OpEntry } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 * const entry: OpEntry = Op.cmp(Loc.make(SharedHeap.create(), 1), 1);
 * console.assert(entry.isCmp && entry.expected === 1);
 * ```
 */
export class OpEntry {
  /** The location. */
  readonly loc: Loc;
  /** The value it must hold (SameValueZero). */
  readonly expected: number;
  /** The value to write (equal to `expected` for a CMP). */
  readonly desired: number;
  /** Whether this is a compare-only entry. */
  readonly isCmp: boolean;

  private constructor(loc: Loc, expected: number, desired: number, isCmp: boolean) {
    this.loc = loc;
    this.expected = expected;
    this.desired = desired;
    this.isCmp = isCmp;
  }

  static {
    makeEntry = (loc, expected, desired, isCmp) => new OpEntry(loc, expected, desired, isCmp);
  }
}

/**
 * Options of {@linkcode Op.atomically}.
 *
 * @example
 * ```ts
 * import { type AtomicallyOptions, Loc, Op } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 * const options: AtomicallyOptions = { mode: "lock-free" };
 * const loc = Loc.make(SharedHeap.create(), 1);
 * console.assert(Op.atomically([Op.cas(loc, 1, 2)], options));
 * ```
 */
export interface AtomicallyOptions {
  /** See {@linkcode CommitOptions.mode}; default `"obstruction-free"`. */
  mode?: CommitMode;
}

function checkEntryLoc(loc: unknown, what: string): Loc {
  if (!(loc instanceof Loc)) {
    throw new TypeError(
      `Cannot make ${what} as 'loc' is not a Loc: current value is ${describeValue(loc)}`,
    );
  }
  return loc;
}

function checkExpected(expected: unknown, what: string): number {
  if (typeof expected !== "number") {
    throw new TypeError(
      `Cannot make ${what} as 'expected' must be a number: current value is ${
        describeValue(expected)
      }`,
    );
  }
  return expected;
}

// Scratch arrays of atomically(): no user code runs inside, so no reentry.
const cells: number[] = [];
const values: number[] = [];
const writes: boolean[] = [];
const addrs: number[] = [];
const order: number[] = [];

/**
 * Primitive operations over several locations.
 *
 * @example
 * ```ts
 * import { Loc, Op } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const a = Loc.make(heap, 6);
 * const b = Loc.make(heap, 0);
 * console.assert(Op.atomically([Op.cas(a, 6, 10), Op.cas(b, 0, 52)]));
 * console.assert(!Op.atomically([Op.cas(a, 6, 0), Op.cmp(b, 52)])); // a is 10 now
 * console.assert(a.get() === 10 && b.get() === 52);
 * ```
 */
export const Op: {
  /**
   * An entry that requires `loc` to hold `expected` and sets it to
   * `desired`. Throws `TypeError`/`RangeError` for values the location
   * cannot hold.
   *
   * @example
   * ```ts
   * import { Loc, Op, SharedHeap } from "@sabre/sabre";
   * const loc = Loc.make(SharedHeap.create(), 1);
   * const entry = Op.cas(loc, 1, 2);
   * console.assert(Op.atomically([entry]) && loc.get() === 2);
   * console.assert(!Op.atomically([entry])); // loc no longer holds 1
   * ```
   */
  cas(loc: Loc, expected: number, desired: number): OpEntry;
  /**
   * An entry that only requires `loc` to hold `expected`.
   *
   * @example
   * ```ts
   * import { Loc, Op, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const open = Loc.make(heap, 1);
   * const data = Loc.make(heap, 1);
   * // Change data only while open is 1.
   * console.assert(Op.atomically([Op.cmp(open, 1), Op.cas(data, 1, 2)]));
   * open.set(0);
   * console.assert(!Op.atomically([Op.cmp(open, 1), Op.cas(data, 2, 3)]) && data.get() === 2);
   * ```
   */
  cmp(loc: Loc, expected: number): OpEntry;
  /**
   * Performs `entries` atomically: returns true when every location held
   * its expected value at one instant, at which every CAS entry took
   * effect; false, changing nothing, when some location did not hold its
   * expected value. Lock-free (obstruction-free for CMP entries in the
   * default mode; conflicting attempts are retried, switching to
   * lock-free). Throws `RangeError` when a location appears twice or the
   * locations live in different heaps, `TypeError` for an entry not made
   * by `Op.cas`/`Op.cmp`.
   *
   * @example
   * ```ts
   * import { Loc, Op, SharedHeap } from "@sabre/sabre";
   * const heap = SharedHeap.create();
   * const a = Loc.make(heap, 1);
   * const b = Loc.make(heap, 2);
   * // Swap a and b, unless another worker changed either since they were read.
   * const [x, y] = [a.get(), b.get()];
   * console.assert(Op.atomically([Op.cas(a, x, y), Op.cas(b, y, x)]));
   * console.assert(a.get() === 2 && b.get() === 1);
   * ```
   */
  atomically(entries: readonly OpEntry[], options?: AtomicallyOptions): boolean;
} = {
  // The documentation is on the type above, which is what users see.
  cas(loc: Loc, expected: number, desired: number): OpEntry {
    checkEntryLoc(loc, "CAS entry");
    checkExpected(expected, "CAS entry");
    return makeEntry(loc, expected, checkValue(loc["k"], desired, "make CAS entry"), false);
  },

  cmp(loc: Loc, expected: number): OpEntry {
    checkEntryLoc(loc, "CMP entry");
    checkExpected(expected, "CMP entry");
    return makeEntry(loc, expected, expected, true);
  },

  atomically(entries: readonly OpEntry[], options?: AtomicallyOptions): boolean {
    if (!Array.isArray(entries)) {
      throw new TypeError(
        `Cannot perform operations atomically as 'entries' must be an array: current value is ${
          describeValue(entries)
        }`,
      );
    }
    let mode: CommitMode = options?.mode ?? "obstruction-free";
    if (mode !== "obstruction-free" && mode !== "lock-free") {
      throw new RangeError(
        `Cannot perform operations atomically as 'mode' must be "obstruction-free" or "lock-free": current value is ${
          describeValue(mode)
        }`,
      );
    }
    const n = entries.length;
    if (n === 0) return true;
    let domain: Domain | undefined;
    for (let i = 0; i < n; i++) {
      const entry = entries[i];
      if (!(entry instanceof OpEntry)) {
        throw new TypeError(
          `Cannot perform operations atomically as entry ${i} was not made by Op.cas or Op.cmp: current value is ${
            describeValue(entry)
          }`,
        );
      }
      const d = entry.loc["d"];
      if (domain === undefined) domain = d;
      else if (d !== domain) {
        throw new RangeError(
          `Cannot perform operations atomically as entry ${i}'s Loc belongs to another heap (or STM domain) than entry 0's`,
        );
      }
      const a = entry.loc["a"];
      for (let j = 0; j < i; j++) {
        if (addrs[j] === a) {
          throw new RangeError(
            `Cannot perform operations atomically as entries ${j} and ${i} name the same Loc (offset ${a})`,
          );
        }
      }
      addrs[i] = a;
    }
    const heap = domain!.heap;
    for (let failures = 0, backoff = 1, recovered = false;;) {
      let outcome: number;
      try {
        heap.pinForOperation();
        try {
          outcome = attempt(domain!, n, entries, mode);
        } finally {
          heap.unpin();
        }
      } catch (e) {
        // A full heap: nothing was written; wait for reclamation, once.
        if (recovered || !recoverFromFullHeap(domain, e)) throw e;
        recovered = true;
        continue;
      }
      if (outcome !== AGAIN) return outcome === DONE;
      if (++failures >= 2) mode = "lock-free";
      for (let i = 0; i < backoff; i++) pause();
      backoff = Math.min(backoff * 2, 1024);
    }
  },
} as const;

/** attempt's outcomes. */
const DONE = 0;
const UNEQUAL = 1;
const AGAIN = 2;

/**
 * One try of Op.atomically, pinned: DONE (committed, or nothing to write
 * and every value as expected), UNEQUAL (a value differs from its
 * expected one) or AGAIN (a commit raced us).
 */
function attempt(
  domain: Domain,
  n: number,
  entries: readonly OpEntry[],
  mode: CommitMode,
): number {
  let written = 0;
  for (let i = 0; i < n; i++) {
    const entry = entries[i];
    const cell = domain.resolve(entry.loc["w"]);
    const value = domain.valueOf(cell);
    if (!sameValueZero(value, entry.expected)) return UNEQUAL;
    cells[i] = cell;
    const w = !entry.isCmp && !Object.is(entry.desired, value);
    writes[i] = w;
    values[i] = w ? entry.desired : value;
    if (w) written++;
  }
  if (written === 0) {
    // Each location kept its cell from its read to this check, and
    // every read came before every check: one instant saw them all.
    for (let i = 0; i < n; i++) {
      if (domain.resolve(entries[i].loc["w"]) !== cells[i]) return AGAIN;
    }
    return DONE;
  }
  if (n === 1) return domain.casOne(addrs[0], cells[0], values[0], true) ? DONE : AGAIN;
  orderByAddress(n, addrs, order);
  return domain.commit(n, order, addrs, cells, values, writes, mode, true) ? DONE : AGAIN;
}
