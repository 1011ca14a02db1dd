/**
 * Software transactional memory in shared memory, in the style of OCaml's
 * kcas: {@linkcode Loc}s (shared locations holding numbers), {@linkcode Xt}
 * (composable transactions with an explicit log), {@linkcode Op} (primitive
 * multi-word CAS), {@linkcode Retry} (blocking and restarting), and commits
 * that are lock-free and survive workers that die in the middle of them.
 *
 * ```ts
 * import { Loc, Retry, Xt } from "@sabre/sabre";
 * import { SharedHeap } from "@sabre/sabre";
 *
 * const heap = SharedHeap.create();
 * const accounts = Loc.makeArray(heap, 2, 100, { kind: "i32" });
 * // Move 30 from account 0 to account 1, atomically; wait while broke.
 * Xt.commit((xt) => {
 *   Retry.unless(xt.get(accounts[0]) >= 30);
 *   xt.fetchAndAdd(accounts[0], -30);
 *   xt.fetchAndAdd(accounts[1], 30);
 * });
 * console.assert(accounts[0].get() === 70 && accounts[1].get() === 130);
 * // In a worker: const account = Loc.attach(handleFromPostMessage);
 * ```
 *
 * ## What a caller may observe
 *
 * - Every Loc operation, `Op.atomically` and every committed transaction is
 *   linearizable (transactions: strictly serializable), together with each
 *   other, across workers.
 * - **Opacity**: inside one transaction attempt, all values read are from
 *   one consistent state, even in an attempt that later fails (kcas itself
 *   does not promise this; see its "read skew" experiment).
 * - A worker terminated at any point of a commit never leaves a half-applied
 *   transaction, and never blocks others: they finish its commit or abort
 *   it.
 * - `Retry.later()` parks the worker (`Atomics.wait`, or `waitAsync` in
 *   `Xt.commitAsync`) until another commit changes something the
 *   transaction read; no polling.
 *
 * ## Algorithm
 *
 * Each Loc is a 16-byte heap block whose **loc word** points to an immutable
 * 16-byte **cell** (the f64 value and a stamp). A commit builds a
 * **descriptor** in shared memory: a status word and one entry per location
 * (loc, expected cell, new cell), sorted by address. Its owner installs the
 * entries one by one with a CAS of each loc word from the expected cell to
 * a tagged pointer to the entry (status INSTALLING), flips the status to
 * INSTALLED, and then anyone may **decide** it: validate read-only entries,
 * bump the domain's commit counter, and CAS the status to AFTER (or BEFORE).
 * A loc word that names an entry resolves to the entry's new cell when the
 * status is AFTER and to its expected cell otherwise, so the status CAS
 * switches every location at one instant. The owner then replaces each
 * entry pointer by the cell it resolves to, and retires the dead cells and
 * the descriptor (nothing names it any more) through the heap's epochs.
 *
 * **Recycling**: retired cells and descriptors go into the worker's own
 * pools (JS rings of block and epoch), not to the heap: a pooled block is
 * rewritten for the next commit once an epoch loaded after it was unlinked
 * is 2 behind the current one, the same proof by which the heap frees
 * retired blocks (no worker pinned when it was unlinked is still pinned).
 * This replaces an allocate, a retire and a free per block by two ring
 * operations. `heap.collect()` and `heap.close()` empty the pools into the
 * heap; a full pool retires into the heap directly.
 *
 * This is the Harris-Fraser-Pratt shape with GKMZ's single status decision
 * (kcas's algorithm), changed for manual memory management: only the owner
 * installs entries, so once the owner has cleaned up, no loc word can name
 * the descriptor again and it can be retired. Others **help** a descriptor
 * that is fully installed (deciding is idempotent, one status CAS wins) and
 * **abort** one that is still being installed, after a short spin. A dead
 * owner's descriptor is thus either decided by others (if it got to
 * INSTALLED) or aborted; either way its entries are cleaned up by whoever
 * needs the locations next. Progress: deciding is lock-free; installation
 * is obstruction-free with backoff (two owners that keep aborting each
 * other could in theory livelock; in practice one of them finishes within
 * the spin).
 *
 * **Read-only entries** of a commit are validated, not written, in the
 * default `"obstruction-free"` mode (a reader of a location in a commit that
 * is INSTALLED helps decide it, which re-validates, so no reader can see
 * the old value of a location after the commit was linearized); in
 * `"lock-free"` mode they are installed unchanged like writes. A commit that
 * failed twice switches to lock-free.
 *
 * **Opacity** uses the commit counter: it is bumped before every status
 * change to AFTER, and a transaction records it before its first read. A new
 * read that finds the counter moved re-checks every logged location (each
 * must still resolve to the cell read, helping INSTALLED commits first); a
 * commit whose counter bump came before the recorded value had installed
 * its entries earlier still, so the re-check sees them. Cells are never
 * reused while the reader is pinned, so "the same cell" means "the same
 * value throughout". Single-location operations are one-entry commits (a
 * pooled cell and descriptor, 3 CAS and one counter bump).
 * Pointers read from shared memory (cells, entries, other workers' Locs)
 * are checked against the worker's views and `ensure`d first.
 *
 * **Stamps**: a dead owner's pin no longer protects the cells it read, so a
 * helper validating its read-only entries compares the cell's stamp (an id
 * that the domain header gives each worker's Domain object once, and a
 * per-worker sequence) too; a reused block cannot pass as the cell that was
 * read, even one reused by a new worker in a dead owner's old slot.
 *
 * **Blocking**: the domain header holds 64 buckets of `[seq, waiters]`
 * words (plus one for read sets that span buckets). A waiter counts itself
 * in, reads the bucket's sequence, re-checks its read set, unpins and parks
 * on the sequence; the winner of a status CAS to AFTER bumps and notifies
 * the buckets of the written locations when the header's waiting count is
 * non-zero. Atomics are sequentially consistent, so either the waiter's
 * re-check sees the change or the committer sees the waiter. Parks last at
 * most 250 ms, after which the transaction runs again, so a committer that
 * died before notifying delays its waiters by at most that.
 *
 * ## Memory-model patterns of every field
 *
 * - Loc block: tag, kind, domain: (b), written before the Atomics store of
 *   the tag; loc word: (a).
 * - Cells: (b): filled with plain writes before the CAS that publishes them
 *   (directly, or through an entry), never changed until retired and proven
 *   unreachable through epochs (then reused as a new cell, or freed).
 *   `Loc.get` reads the value with a plain f64 read after the Atomics load
 *   of the loc word, while pinned.
 * - Descriptor: status (a); count, owner and entries (b), written before the
 *   first install CAS (recycled like cells).
 * - Domain header: commit counter, waiting count and bucket words (a), each
 *   on its own cache line; tag and version (b).
 *
 * ## Known limits
 *
 * - A worker's pools hold up to 512 dead blocks each (cells, and
 *   descriptors of up to 1, 2, 4 and 8 entries); they count as live blocks
 *   in `heap.stats()` until `collect()` or `close()` takes them back, and
 *   are leaked, like its retired blocks, when the worker dies.
 * - A worker that stays pinned (an outer `heap.pin()`) across many commits
 *   stops the epoch, so its pools cannot refill: each commit then allocates
 *   its cells and descriptor from the heap.
 * - A transaction blocked in `Retry.later()` inside an outer `heap.pin()`
 *   (or inside another transaction) stays pinned while parked, which holds
 *   back memory reclamation for every worker.
 * - A Loc lives as long as its heap, unless `loc.free()` gives it back
 *   (after it has been unlinked from every structure that reached it).
 * - The commit counter is one shared word that every committing worker
 *   bumps: it caps write scaling across many workers.
 * - A worker that dies right after winning a status CAS, before it
 *   notifies, leaves the waiters on those locations parked until their next
 *   recheck: a blocked transaction runs again at least every 250 ms.
 * - A worker blocked in a sync `Retry.later()` cannot be terminated while
 *   parked (Deno's `terminate()` does not interrupt `Atomics.wait`).
 *
 * @module
 */

export { Loc, type LocHandle, type LocKind, type LocOptions } from "./loc.ts";
export { type CommitOptions, type Tx, Xt, type XtSnapshot } from "./xt.ts";
export { type AtomicallyOptions, Op, OpEntry } from "./op.ts";
export { Invalid, isRetry, Later, Retry } from "./retry.ts";
export type { CommitMode } from "./_kcas.ts";
