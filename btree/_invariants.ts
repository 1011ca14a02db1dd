/**
 * Structural invariant checker of a {@linkcode BPlusTree}, for tests. Call
 * it while no other worker writes to the tree. Internal.
 *
 * @module
 */

import { type BPlusTree, treeInternals } from "./btree.ts";
import {
  C_FLAGS,
  countOf,
  HIGH_INF,
  HIGH_REF,
  isLeaf,
  LOW_INF,
  LOW_REF,
  N_CONTENT,
  N_VERSION,
} from "./_node.ts";

/** What {@linkcode checkTree} found. */
export interface TreeShape {
  size: number;
  height: number;
  leaves: number;
  innerNodes: number;
}

/**
 * Walks the whole tree and throws an Error naming the first broken
 * invariant:
 * - no node is latched, and every node's content is live;
 * - keys strictly increase within a node and lie within its fences;
 * - each child's fences equal the parent's separators around it (the
 *   outermost children inherit the parent's fences), so leaves tile the key
 *   space without gaps or overlaps, and the root's fences are infinite;
 * - every leaf is at the same depth, which is the tree's height;
 * - every node other than the root is filled to at least the merge
 *   threshold, and an inner root has two children or more (both unless
 *   `strictFill` is false: merges and root shrinks are best effort under
 *   contention);
 * - the entries add up to `tree.size`.
 */
export function checkTree<K, V>(
  tree: BPlusTree<K, V>,
  options: { strictFill?: boolean } = {},
): TreeShape {
  const heap = tree.heap;
  const internals = treeInternals(tree);
  const format = internals.format;
  const strictFill = options.strictFill ?? true;
  const minFill = internals.minFill;
  const caps = tree.capacities;
  const shape: TreeShape = { size: 0, height: tree.height, leaves: 0, innerNodes: 0 };
  heap.pin();
  try {
    heap.ensure(heap.sab.byteLength);
    const i32 = heap.i32, u8 = heap.u8;
    const describe = (w: number, i: number): string => {
      try {
        format.stageKeyFrom(i32, u8, w, i);
        return String(format.stagedKey());
      } catch {
        return "?";
      }
    };
    /** Compares key/fence ref (aw, ai) with (bw, bi). */
    const compare = (aw: number, ai: number, bw: number, bi: number): number => {
      format.stageKeyFrom(i32, u8, aw, ai);
      return format.compareStaged(i32, u8, bw, bi);
    };
    const sameFence = (
      aw: number,
      ai: number,
      aFlag: number,
      bw: number,
      bi: number,
      bFlag: number,
    ) => {
      const aInf = (i32[aw + C_FLAGS] & aFlag) !== 0;
      const bInf = (i32[bw + C_FLAGS] & bFlag) !== 0;
      if (aInf || bInf) return aInf === bInf;
      return compare(aw, ai, bw, bi) === 0;
    };
    const visit = (node: number, depth: number, isRoot: boolean): void => {
      const where = `node ${node} at depth ${depth}`;
      if ((Atomics.load(i32, (node >> 2) + N_VERSION) & 1) !== 0) {
        throw new Error(`${where} is latched`);
      }
      const c = Atomics.load(i32, (node >> 2) + N_CONTENT);
      if (c === 0) throw new Error(`${where} is a removed node still linked`);
      const w = c >> 2;
      const n = countOf(i32, w);
      const leaf = isLeaf(i32, w);
      const flags = i32[w + C_FLAGS];
      if (isRoot && (flags & (LOW_INF | HIGH_INF)) !== (LOW_INF | HIGH_INF)) {
        throw new Error(`root ${where} has finite fences`);
      }
      for (let i = 0; i < n; i++) {
        if (i > 0) {
          const order = compare(w, i - 1, w, i);
          if (order >= 0) {
            throw new Error(
              `${where}: ${order === 0 ? "duplicate key" : "keys out of order at"} ${
                describe(w, i - 1)
              } then ${describe(w, i)}`,
            );
          }
        }
        if ((flags & LOW_INF) === 0 && compare(w, i, w, LOW_REF) < 0) {
          throw new Error(
            `${where}: key ${describe(w, i)} below the low fence ${describe(w, LOW_REF)}`,
          );
        }
        if ((flags & HIGH_INF) === 0 && compare(w, i, w, HIGH_REF) >= 0) {
          throw new Error(
            `${where}: key ${describe(w, i)} not below the high fence ${describe(w, HIGH_REF)}`,
          );
        }
      }
      if (leaf) {
        if (depth !== shape.height - 1) {
          throw new Error(`${where}: a leaf at depth ${depth} in a tree of height ${shape.height}`);
        }
        if (n > caps.leaf) throw new Error(`${where}: ${n} entries over the capacity ${caps.leaf}`);
        if (!isRoot && strictFill && n < minFill.leaf) {
          throw new Error(`${where}: a leaf with ${n} entries, under the minimum ${minFill.leaf}`);
        }
        shape.leaves++;
        shape.size += n;
        return;
      }
      shape.innerNodes++;
      if (n + 1 > caps.inner) {
        throw new Error(`${where}: ${n + 1} children over the capacity ${caps.inner}`);
      }
      if (isRoot && strictFill && n < 1) throw new Error(`${where}: an inner root with one child`);
      if (!isRoot && strictFill && n + 1 < minFill.inner) {
        throw new Error(`${where}: ${n + 1} children, under the minimum ${minFill.inner}`);
      }
      for (let i = 0; i <= n; i++) {
        const child = i32[format.childWord(w, n, i)];
        const cc = Atomics.load(i32, (child >> 2) + N_CONTENT);
        if (cc === 0) throw new Error(`${where}: child ${i} was removed`);
        const cw = cc >> 2;
        // Child i spans [separator i-1 (or our low fence), separator i (or our high fence)).
        const lowOk = i === 0
          ? sameFence(cw, LOW_REF, LOW_INF, w, LOW_REF, LOW_INF)
          : (i32[cw + C_FLAGS] & LOW_INF) === 0 && compare(cw, LOW_REF, w, i - 1) === 0;
        const highOk = i === n
          ? sameFence(cw, HIGH_REF, HIGH_INF, w, HIGH_REF, HIGH_INF)
          : (i32[cw + C_FLAGS] & HIGH_INF) === 0 && compare(cw, HIGH_REF, w, i) === 0;
        if (!lowOk || !highOk) {
          throw new Error(`${where}: child ${i}'s fences do not match the separators around it`);
        }
        visit(child, depth + 1, false);
      }
    };
    visit(internals.root(), 0, true);
  } finally {
    heap.unpin();
  }
  if (shape.size !== tree.size) {
    throw new Error(`the leaves hold ${shape.size} entries but size says ${tree.size}`);
  }
  return shape;
}
