/**
 * Linearizability checking against a sequential model.
 *
 * A history (see `history.ts`) is linearizable when its operations can be put
 * in one sequential order that (1) respects real time: if A responded before B
 * was invoked, A comes first; (2) gives every completed operation the result
 * it really returned, when the order is replayed through the sequential
 * {@linkcode Model}; (3) contains every completed operation, and any subset of
 * the pending ones (a pending operation may or may not have taken effect).
 *
 * The search is Wing and Gong's, with Lowe's cache ("WGL"). Call and return
 * events sit in a doubly linked list sorted by time. The search walks the list
 * from its head: at a call it tries to linearize that operation now (the model
 * must give the observed result), removing the operation's call and return
 * from the list and pushing it on a stack; at a return it has met an operation
 * that must already have been linearized, so it backtracks: pops the last
 * operation, puts its events back and tries the next candidate after it. The
 * cache holds every (set of linearized operations, model state) pair reached
 * so far; a pair seen before leads nowhere new and is pruned. The history is
 * linearizable when no completed operation is left, and is not when the
 * search must backtrack with an empty stack.
 *
 * The search is exponential in the worst case. Keep histories to a few
 * hundred operations, and split them with {@linkcode partitionByKey} when the
 * operations on different keys are independent (per-key checks are far
 * cheaper). {@linkcode CheckOptions.maxSteps} and
 * {@linkcode CheckOptions.timeoutMs} bound the work; past them the answer is
 * `ok: "unknown"`.
 *
 * @module
 */

import { formatRecord, formatValue, type History, type OpRecord } from "./history.ts";

/**
 * A result value a model returns for an operation whose result is not
 * checked, such as a `write` whose return value means nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { anyResult, defineModel } from "./linearizability.ts";
 * const log = defineModel<number>({
 *   name: "log",
 *   init: () => 0,
 *   ops: { append: (n) => ({ state: n + 1, result: anyResult }) },
 * });
 * assert(log.step(0, "append", []).result === anyResult);
 * ```
 */
export const anyResult: unique symbol = Symbol("sabre.anyResult");

/**
 * What a model's step returns: the state after the operation and the result
 * the operation must have returned (or {@linkcode anyResult}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { registerModel, type Step } from "./linearizability.ts";
 * const step: Step<unknown> = registerModel(5).step(5, "exchange", [6]);
 * assert.deepEqual(step, { state: 6, result: 5 });
 * ```
 */
export interface Step<S> {
  /** The state after the operation. */
  readonly state: S;
  /** The result a correct implementation returns. */
  readonly result: unknown;
}

/**
 * A deterministic sequential specification.
 *
 * States are values: `step` must not mutate the state it is given, because
 * the search returns to old states when it backtracks. Return a new state, or
 * the same one when the operation changes nothing. Copying small states is
 * cheap; for large ones, use persistent structures.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Model } from "./linearizability.ts";
 * const flag: Model<boolean> = {
 *   name: "flag",
 *   init: () => false,
 *   step(state, op) {
 *     if (op === "set") return { state: true, result: state };
 *     if (op === "get") return { state, result: state };
 *     throw new TypeError(`Cannot apply '${op}' to a flag`);
 *   },
 *   key: (state) => String(state),
 * };
 * assert(flag.step(false, "set", []).result === false);
 * ```
 */
export interface Model<S> {
  /** Name used in reports. */
  readonly name: string;
  /** The initial state. */
  init(): S;
  /** Applies operation `op` with `args` to `state`; must not mutate `state`. */
  step(state: S, op: string, args: readonly unknown[]): Step<S>;
  /**
   * Whether an `observed` result is acceptable where the model computed
   * `expected`. Defaults to {@linkcode canonicalKey} equality (deep, `0`
   * equal to `-0`, `NaN` equal to itself). Never called with `anyResult`.
   */
  equalResult?(expected: unknown, observed: unknown, op: string, args: readonly unknown[]): boolean;
  /**
   * A string equal for equal states and different for different ones, for
   * the search's cache. Defaults to {@linkcode canonicalKey}.
   */
  key?(state: S): string;
}

/**
 * One operation of a model built by {@linkcode defineModel}: `(state, args) → step`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OpFn } from "./linearizability.ts";
 * const increment: OpFn<number> = (n) => ({ state: n + 1, result: n });
 * assert.deepEqual(increment(1, []), { state: 2, result: 1 });
 * ```
 */
export type OpFn<S> = (state: S, args: readonly unknown[]) => Step<S>;

/**
 * What {@linkcode defineModel} needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineModel, type ModelSpec } from "./linearizability.ts";
 * const spec: ModelSpec<boolean> = {
 *   name: "latch",
 *   init: () => false,
 *   ops: {
 *     open: () => ({ state: true, result: undefined }),
 *     isOpen: (s) => ({ state: s, result: s }),
 *   },
 *   key: String,
 * };
 * assert.equal(defineModel(spec).step(false, "open", []).state, true);
 * ```
 */
export interface ModelSpec<S> {
  /** Name used in reports. */
  readonly name: string;
  /** The initial state. */
  init(): S;
  /** Operation name → behaviour. */
  readonly ops: Readonly<Record<string, OpFn<S>>>;
  /** See {@linkcode Model.equalResult}. */
  equalResult?(expected: unknown, observed: unknown, op: string, args: readonly unknown[]): boolean;
  /** See {@linkcode Model.key}. */
  key?(state: S): string;
}

/**
 * Builds a {@linkcode Model} from a table of operations. Applying an
 * operation the table lacks throws a `TypeError` that lists the known ones.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineModel } from "./linearizability.ts";
 * const max = defineModel<number>({
 *   name: "max",
 *   init: () => 0,
 *   ops: {
 *     offer: (s, [v]) => ({ state: Math.max(s, v as number), result: undefined }),
 *     get: (s) => ({ state: s, result: s }),
 *   },
 * });
 * assert(max.step(max.step(0, "offer", [5]).state, "get", []).result === 5);
 * ```
 */
export function defineModel<S>(spec: ModelSpec<S>): Model<S> {
  const ops = { ...spec.ops };
  const model: Model<S> = {
    name: spec.name,
    init: () => spec.init(),
    step(state, op, args) {
      if (!Object.hasOwn(ops, op)) {
        throw new TypeError(
          `Cannot apply operation '${op}' as the ${spec.name} model has no such operation: it knows ${
            Object.keys(ops).join(", ")
          }`,
        );
      }
      return ops[op](state, args);
    },
  };
  if (spec.equalResult) model.equalResult = spec.equalResult;
  if (spec.key) model.key = spec.key;
  return model;
}

/**
 * A canonical string for plain data: equal for values that are deeply equal,
 * different otherwise. Handles primitives (bigint, `undefined`, `-0` as `0`,
 * `NaN`), arrays, typed arrays, `Map` and `Set` (order-insensitive), `Date`,
 * `Error` and plain objects (key-order-insensitive). Throws `TypeError` for
 * functions and symbols. Used as the default state key and result equality,
 * and to group keys such as `Uint8Array` by content.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalKey } from "./linearizability.ts";
 * assert(canonicalKey({ a: 1, b: [2n] }) === canonicalKey({ b: [2n], a: 1 }));
 * assert(canonicalKey(new Uint8Array([1])) !== canonicalKey([1]));
 * assert(canonicalKey(1) !== canonicalKey("1"));
 * ```
 */
export function canonicalKey(value: unknown): string {
  switch (typeof value) {
    case "undefined":
      return "u";
    case "boolean":
      return value ? "t" : "f";
    case "number":
      return value === 0 ? "0" : String(value);
    case "bigint":
      return `${value}n`;
    case "string":
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) return `[${value.map(canonicalKey).join(",")}]`;
      if (ArrayBuffer.isView(value)) {
        const bytes = value instanceof DataView
          ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
          : value as unknown as ArrayLike<number | bigint>;
        return `${value.constructor.name}<${Array.from(bytes, String).join(",")}>`;
      }
      if (value instanceof Map) {
        const items = [...value].map(([k, v]) => `${canonicalKey(k)}=>${canonicalKey(v)}`);
        return `Map{${items.sort().join(",")}}`;
      }
      if (value instanceof Set) return `Set{${[...value].map(canonicalKey).sort().join(",")}}`;
      if (value instanceof Date) return `Date(${value.getTime()})`;
      if (value instanceof Error) return `${value.name}(${JSON.stringify(value.message)})`;
      const keys = Object.keys(value).sort();
      const record = value as Record<string, unknown>;
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalKey(record[k])}`).join(",")}}`;
    }
    default:
      throw new TypeError(
        `Cannot make a canonical key as 'value' must be plain data: current value is ${
          String(value)
        }`,
      );
  }
}

function defaultEqual(expected: unknown, observed: unknown): boolean {
  return Object.is(expected, observed) || canonicalKey(expected) === canonicalKey(observed);
}

// ---------------------------------------------------------------------------
// Ready-made models

function withOps<S>(base: Record<string, OpFn<S>>, extra?: Readonly<Record<string, OpFn<S>>>) {
  return extra ? { ...base, ...extra } : base;
}

/**
 * Options common to the ready-made models.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ModelOptions, registerModel } from "./linearizability.ts";
 * const options: ModelOptions<unknown> = {
 *   ops: { reset: () => ({ state: 0, result: undefined }) },
 * };
 * assert.equal(registerModel(5, options).step(5, "reset", []).state, 0);
 * ```
 */
export interface ModelOptions<S> {
  /** Extra operations, or replacements for the standard ones (same name). */
  readonly ops?: Readonly<Record<string, OpFn<S>>>;
}

/**
 * A single register holding any plain value.
 *
 * | operation | result |
 * | --- | --- |
 * | `read()` | the value |
 * | `write(v)` | not checked |
 * | `exchange(v)` | the previous value |
 * | `cas(expected, v)` | `true` and stores `v` when the value equals `expected` (deeply), else `false` |
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinearizable, registerModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("write", [1], () => undefined);
 * rec.record("read", [], () => 1);
 * assert(checkLinearizable(rec.records, registerModel(0)).ok === true);
 * ```
 */
export function registerModel(
  initial: unknown = 0,
  options: ModelOptions<unknown> = {},
): Model<unknown> {
  return defineModel<unknown>({
    name: "register",
    init: () => initial,
    ops: withOps<unknown>({
      read: (s) => ({ state: s, result: s }),
      write: (_, [v]) => ({ state: v, result: anyResult }),
      exchange: (s, [v]) => ({ state: v, result: s }),
      cas: (s, [expected, v]) =>
        defaultEqual(s, expected) ? { state: v, result: true } : { state: s, result: false },
    }, options.ops),
  });
}

/**
 * A counter holding a number or a bigint (the type of `initial`).
 *
 * | operation | result |
 * | --- | --- |
 * | `get()` | the value |
 * | `set(v)` | not checked |
 * | `fetchAndAdd(d)` | the value before adding `d` |
 * | `addAndFetch(d)` | the value after adding `d` |
 * | `compareAndSet(expected, v)` | `true` and stores `v` when the value is `expected`, else `false` |
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinearizable, counterModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("fetchAndAdd", [1], () => 0);
 * rec.record("fetchAndAdd", [1], () => 0); // lost update
 * assert(checkLinearizable(rec.records, counterModel()).ok === false);
 * ```
 */
export function counterModel(
  initial: number | bigint = 0,
  options: ModelOptions<number | bigint> = {},
): Model<number | bigint> {
  type N = number | bigint;
  const add = (a: N, d: unknown): N => (a as number) + (d as number);
  return defineModel<N>({
    name: "counter",
    init: () => initial,
    ops: withOps<N>({
      get: (s) => ({ state: s, result: s }),
      set: (_, [v]) => ({ state: v as N, result: anyResult }),
      fetchAndAdd: (s, [d]) => ({ state: add(s, d), result: s }),
      addAndFetch: (s, [d]) => {
        const next = add(s, d);
        return { state: next, result: next };
      },
      compareAndSet: (s, [expected, v]) =>
        s === expected ? { state: v as N, result: true } : { state: s, result: false },
    }, options.ops),
    key: (s) => canonicalKey(s),
  });
}

/**
 * The state of {@linkcode mapModel}: an immutable map whose keys compare by
 * content ({@linkcode canonicalKey}), so `Uint8Array` and bigint keys work.
 * Every update returns a new `MapState` (an O(size) copy: small per-key
 * partitions keep it cheap).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MapState } from "./linearizability.ts";
 * const a = MapState.from([[new Uint8Array([1]), "x"]]);
 * const b = a.with(new Uint8Array([1]), "y");
 * assert(a.get(new Uint8Array([1])) === "x" && b.get(new Uint8Array([1])) === "y");
 * ```
 */
export class MapState {
  readonly #entries: ReadonlyMap<string, readonly [unknown, unknown]>;

  private constructor(entries: ReadonlyMap<string, readonly [unknown, unknown]>) {
    this.#entries = entries;
  }

  /**
   * A map holding `entries` (later duplicates win).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(MapState.from([["a", 1], ["a", 2]]).get("a") === 2);
   * ```
   */
  static from(entries: Iterable<readonly [unknown, unknown]> = []): MapState {
    const map = new Map<string, readonly [unknown, unknown]>();
    for (const [k, v] of entries) map.set(canonicalKey(k), [k, v]);
    return new MapState(map);
  }

  /**
   * Number of entries.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(MapState.from([["a", 1]]).size === 1);
   * ```
   */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Whether `key` is present.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(MapState.from([[1n, 0]]).has(1n));
   * ```
   */
  has(key: unknown): boolean {
    return this.#entries.has(canonicalKey(key));
  }

  /**
   * The value at `key`, or `undefined`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(MapState.from().get("a") === undefined);
   * ```
   */
  get(key: unknown): unknown {
    return this.#entries.get(canonicalKey(key))?.[1];
  }

  /**
   * A copy with `key` set to `value`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(MapState.from().with("a", 1).get("a") === 1);
   * ```
   */
  with(key: unknown, value: unknown): MapState {
    const map = new Map(this.#entries);
    map.set(canonicalKey(key), [key, value]);
    return new MapState(map);
  }

  /**
   * A copy without `key` (this map itself when `key` is absent).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(!MapState.from([["a", 1]]).without("a").has("a"));
   * ```
   */
  without(key: unknown): MapState {
    const k = canonicalKey(key);
    if (!this.#entries.has(k)) return this;
    const map = new Map(this.#entries);
    map.delete(k);
    return new MapState(map);
  }

  /**
   * The entries as `[key, value]` pairs, in insertion order.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(MapState.from([["a", 1]]).entries()[0][1] === 1);
   * ```
   */
  entries(): (readonly [unknown, unknown])[] {
    return [...this.#entries.values()];
  }

  /**
   * A canonical string of the contents, the model's cache key.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MapState } from "./linearizability.ts";
   * assert(MapState.from([["a", 1], ["b", 2]]).key() === MapState.from([["b", 2], ["a", 1]]).key());
   * ```
   */
  key(): string {
    const parts: string[] = [];
    for (const [k, [, v]] of this.#entries) parts.push(`${k}=>${canonicalKey(v)}`);
    return parts.sort().join(",");
  }

  /** Shows the entries in reports and `console.log`. */
  [Symbol.for("Deno.customInspect")](
    inspect: (value: unknown, options: Deno.InspectOptions) => string,
    options: Deno.InspectOptions,
  ): string {
    return `MapState ${inspect(new Map(this.entries()), options)}`;
  }
}

/**
 * Options of {@linkcode mapModel}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapModel, type MapModelOptions } from "./linearizability.ts";
 * const options: MapModelOptions = { initial: [["a", 1]] };
 * const model = mapModel(options);
 * assert.equal(model.step(model.init(), "get", ["a"]).result, 1);
 * ```
 */
export interface MapModelOptions extends ModelOptions<MapState> {
  /** Entries present before the history starts. */
  readonly initial?: Iterable<readonly [unknown, unknown]>;
}

/**
 * A key-value map. Keys compare by content, values deeply. Absent values
 * read as `undefined`.
 *
 * | operation | result |
 * | --- | --- |
 * | `get(k)` | the value, or `undefined` |
 * | `has(k)` | whether `k` is present |
 * | `set(k, v)` | the previous value, or `undefined` |
 * | `insert(k, v)` | `true` and stores `v` when `k` was absent, else `false` and changes nothing |
 * | `update(k, v)` | the previous value and stores `v` when `k` was present, else `undefined` and changes nothing |
 * | `getOrInsert(k, v)` | the value now stored: the existing one, or `v` after inserting it |
 * | `compareAndSet(k, expected, v)` | `true` and stores `v` when the value (`undefined` when absent) equals `expected`, else `false` |
 * | `add(k, d)` | the value after adding `d` (absent counts as zero: the result is `d`) |
 * | `delete(k)` | whether `k` was present; removes it |
 * | `deleteIf(k, v)` | `true` and removes `k` when its value equals `v`, else `false` and changes nothing |
 * | `remove(k)` | the removed value, or `undefined` |
 * | `size()` | number of entries (touches every key: do not partition) |
 * | `clear()` | not checked; removes everything (touches every key: do not partition) |
 *
 * Structures whose methods return something else (a `set` that returns
 * nothing, say) record the result the model expects, or replace the
 * operation through `options.ops`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinearizable, mapModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("set", ["a", 1], () => undefined);
 * rec.record("getOrInsert", ["a", 2], () => 1);
 * rec.record("delete", ["a"], () => true);
 * assert(checkLinearizable(rec.records, mapModel()).ok === true);
 * ```
 */
export function mapModel(options: MapModelOptions = {}): Model<MapState> {
  const initial = [...(options.initial ?? [])];
  const same = (s: MapState, result: unknown): Step<MapState> => ({ state: s, result });
  return defineModel<MapState>({
    name: "map",
    init: () => MapState.from(initial),
    ops: withOps<MapState>({
      get: (s, [k]) => same(s, s.get(k)),
      has: (s, [k]) => same(s, s.has(k)),
      set: (s, [k, v]) => ({ state: s.with(k, v), result: s.get(k) }),
      insert: (s, [k, v]) => s.has(k) ? same(s, false) : { state: s.with(k, v), result: true },
      update: (s, [k, v]) =>
        s.has(k) ? { state: s.with(k, v), result: s.get(k) } : same(s, undefined),
      getOrInsert: (s, [k, v]) => s.has(k) ? same(s, s.get(k)) : { state: s.with(k, v), result: v },
      compareAndSet: (s, [k, expected, v]) =>
        defaultEqual(s.get(k), expected) ? { state: s.with(k, v), result: true } : same(s, false),
      add: (s, [k, d]) => {
        const next = s.has(k) ? (s.get(k) as number) + (d as number) : d;
        return { state: s.with(k, next), result: next };
      },
      delete: (s, [k]) => ({ state: s.without(k), result: s.has(k) }),
      deleteIf: (s, [k, v]) =>
        s.has(k) && defaultEqual(s.get(k), v)
          ? { state: s.without(k), result: true }
          : same(s, false),
      remove: (s, [k]) => ({ state: s.without(k), result: s.get(k) }),
      size: (s) => same(s, s.size),
      clear: () => ({ state: MapState.from(), result: anyResult }),
    }, options.ops),
    key: (s) => s.key(),
  });
}

/**
 * Options of {@linkcode queueModel} and {@linkcode stackModel}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ContainerModelOptions, queueModel } from "./linearizability.ts";
 * const options: ContainerModelOptions = { empty: null };
 * const queue = queueModel(options);
 * assert.equal(queue.step(queue.init(), "dequeue", []).result, null);
 * ```
 */
export interface ContainerModelOptions extends ModelOptions<readonly unknown[]> {
  /** What `dequeue`/`pop`/`peek` return on an empty container; default `undefined`. */
  readonly empty?: unknown;
}

/**
 * A FIFO queue. State: the items, front first.
 *
 * | operation | result |
 * | --- | --- |
 * | `enqueue(v)` | not checked |
 * | `dequeue()` | the front item, removed; `options.empty` when empty |
 * | `peek()` | the front item; `options.empty` when empty |
 * | `size()` | number of items |
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinearizable, queueModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("enqueue", [1], () => undefined);
 * rec.record("enqueue", [2], () => undefined);
 * rec.record("dequeue", [], () => 2); // reordered
 * assert(checkLinearizable(rec.records, queueModel()).ok === false);
 * ```
 */
export function queueModel(options: ContainerModelOptions = {}): Model<readonly unknown[]> {
  const empty = options.empty;
  type Q = readonly unknown[];
  return defineModel<Q>({
    name: "queue",
    init: () => [],
    ops: withOps<Q>({
      enqueue: (s, [v]) => ({ state: [...s, v], result: anyResult }),
      dequeue: (s) =>
        s.length === 0 ? { state: s, result: empty } : { state: s.slice(1), result: s[0] },
      peek: (s) => ({ state: s, result: s.length === 0 ? empty : s[0] }),
      size: (s) => ({ state: s, result: s.length }),
    }, options.ops),
  });
}

/**
 * A LIFO stack. State: the items, bottom first.
 *
 * | operation | result |
 * | --- | --- |
 * | `push(v)` | not checked |
 * | `pop()` | the top item, removed; `options.empty` when empty |
 * | `peek()` | the top item; `options.empty` when empty |
 * | `size()` | number of items |
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinearizable, stackModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("push", [1], () => undefined);
 * rec.record("push", [2], () => undefined);
 * rec.record("pop", [], () => 2);
 * rec.record("pop", [], () => 1);
 * rec.record("pop", [], () => null);
 * assert(checkLinearizable(rec.records, stackModel({ empty: null })).ok === true);
 * ```
 */
export function stackModel(options: ContainerModelOptions = {}): Model<readonly unknown[]> {
  const empty = options.empty;
  type St = readonly unknown[];
  return defineModel<St>({
    name: "stack",
    init: () => [],
    ops: withOps<St>({
      push: (s, [v]) => ({ state: [...s, v], result: anyResult }),
      pop: (s) =>
        s.length === 0 ? { state: s, result: empty } : { state: s.slice(0, -1), result: s.at(-1) },
      peek: (s) => ({ state: s, result: s.length === 0 ? empty : s.at(-1) }),
      size: (s) => ({ state: s, result: s.length }),
    }, options.ops),
  });
}

// ---------------------------------------------------------------------------
// P-compositionality

/**
 * One part of a history split by {@linkcode partitionByKey}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Partition, partitionByKey } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("get", ["a"], () => undefined);
 * const [part]: Partition[] = partitionByKey(rec.records, (r) => r.args[0]);
 * assert.equal(part.key, "a");
 * ```
 */
export interface Partition {
  /** The key that `keyOf` returned for the part's operations. */
  readonly key: unknown;
  /** The part's records, in the order of the input. */
  readonly history: History;
}

/**
 * Splits a history by the key each operation touches, so that each part can
 * be checked alone. Keys group by content ({@linkcode canonicalKey}); parts
 * come in order of first appearance.
 *
 * Valid when the object is a product of independent objects, one per key:
 * every operation touches exactly one key, and its result and effect depend
 * only on that key's state. Linearizability is local (Herlihy and Wing), so
 * the whole history is then linearizable exactly when every part is. Map
 * operations `get`, `set`, `delete` and the like qualify; `size`, `clear` or
 * iteration do not, and neither does a model whose initial state links keys.
 *
 * @throws {TypeError} when `keyOf` returns `undefined` for some record: that
 * operation touches no single key, and the history must be checked whole.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstArgKey, partitionByKey } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("set", ["a", 1], () => undefined);
 * rec.record("set", ["b", 2], () => undefined);
 * rec.record("get", ["a"], () => 1);
 * const parts = partitionByKey(rec.records, firstArgKey);
 * assert(parts.length === 2 && parts[0].key === "a" && parts[0].history.length === 2);
 * ```
 */
export function partitionByKey(
  history: History,
  keyOf: (record: OpRecord) => unknown,
): Partition[] {
  const parts = new Map<string, { key: unknown; history: OpRecord[] }>();
  for (const record of history) {
    const key = keyOf(record);
    if (key === undefined) {
      throw new TypeError(
        `Cannot partition the history as 'keyOf' returned undefined for ${
          formatRecord(record)
        }: an operation that touches no single key needs the whole history checked`,
      );
    }
    const id = canonicalKey(key);
    let part = parts.get(id);
    if (part === undefined) parts.set(id, part = { key, history: [] });
    part.history.push(record);
  }
  return [...parts.values()];
}

/**
 * The `keyOf` for {@linkcode mapModel} histories: an operation's first
 * argument, and `undefined` (cannot partition) for `size` and `clear`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstArgKey } from "./linearizability.ts";
 * const r = { worker: 0, seq: 0, op: "get", args: ["k"], invoke: 1, response: 2, result: 1, clock: 0 };
 * assert(firstArgKey(r) === "k");
 * assert(firstArgKey({ ...r, op: "size", args: [] }) === undefined);
 * ```
 */
export function firstArgKey(record: OpRecord): unknown {
  return record.op === "size" || record.op === "clear" ? undefined : record.args[0];
}

// ---------------------------------------------------------------------------
// The checker

/**
 * Options of {@linkcode checkLinearizable}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CheckOptions, checkLinearizable, firstArgKey, mapModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const options: CheckOptions = { partition: firstArgKey, maxSteps: 1_000_000, timeoutMs: 10_000 };
 * const rec = new HistoryRecorder(0);
 * rec.record("set", ["a", 1], () => undefined);
 * assert.equal(checkLinearizable(rec.records, mapModel(), options).ok, true);
 * ```
 */
export interface CheckOptions {
  /** Give up with `ok: "unknown"` after this many search steps in all. Default: no limit. */
  readonly maxSteps?: number;
  /** Give up with `ok: "unknown"` after this many milliseconds. Default: no limit. */
  readonly timeoutMs?: number;
  /**
   * Check each part of {@linkcode partitionByKey}`(history, partition)` on
   * its own; see there for when that is valid.
   */
  readonly partition?: (record: OpRecord) => unknown;
}

/**
 * The history is linearizable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CheckOk, checkLinearizable, stackModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("push", [1], () => undefined);
 * const result = checkLinearizable(rec.records, stackModel());
 * assert(result.ok === true);
 * const ok: CheckOk = result;
 * assert.equal(ok.linearizations[0][0].op, "push");
 * ```
 */
export interface CheckOk {
  /** `true`. */
  readonly ok: true;
  /** Search steps taken. */
  readonly steps: number;
  /**
   * A witness per partition (one when not partitioned): a valid sequential
   * order of all completed operations and of the pending ones that took
   * effect in it.
   */
  readonly linearizations: readonly (readonly OpRecord[])[];
}

/**
 * An operation that could not come next after the longest prefix, and why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Candidate, checkLinearizable, stackModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("pop", [], () => 1);
 * const result = checkLinearizable(rec.records, stackModel());
 * assert(result.ok === false);
 * const [candidate]: readonly Candidate[] = result.candidates;
 * assert.equal(candidate.record.op, "pop");
 * assert.equal(candidate.expected, undefined);
 * ```
 */
export interface Candidate {
  /** The operation. */
  readonly record: OpRecord;
  /** The result the model gives it after the prefix. */
  readonly expected: unknown;
}

/**
 * The history is not linearizable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CheckFailure, checkLinearizable, counterModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("fetchAndAdd", [1], () => 0);
 * rec.record("get", [], () => 0);
 * const result = checkLinearizable(rec.records, counterModel());
 * assert(result.ok === false);
 * const failure: CheckFailure = result;
 * assert.equal(failure.longestPrefix.length, 1);
 * assert.equal(failure.stateAfterPrefix, 1);
 * assert.equal(failure.deadline.op, "get");
 * ```
 */
export interface CheckFailure {
  /** `false`. */
  readonly ok: false;
  /** A multi-line report, readable without the rest of this object. */
  readonly reason: string;
  /** The failing partition's key; `undefined` when not partitioned. */
  readonly partitionKey: unknown;
  /**
   * The longest sequence of operations the search could linearize: the one
   * with most completed operations, then fewest pending ones, first found.
   * The fault lies at its end or before it.
   */
  readonly longestPrefix: readonly OpRecord[];
  /** The model state after `longestPrefix`. */
  readonly stateAfterPrefix: unknown;
  /**
   * The completed operation, not in the prefix, that responded first: some
   * operation invoked before that response must come next.
   */
  readonly deadline: OpRecord;
  /**
   * Those operations, with the model's result for each after the prefix. A
   * completed one's result always disagrees; a pending one may fit, but
   * leads nowhere.
   */
  readonly candidates: readonly Candidate[];
  /** Search steps taken. */
  readonly steps: number;
}

/**
 * The budget ran out before the search ended.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CheckUnknown, checkLinearizable, registerModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("write", [1], () => undefined);
 * rec.record("read", [], () => 1);
 * const result = checkLinearizable(rec.records, registerModel(), { maxSteps: 1 });
 * assert(result.ok === "unknown");
 * const unknown: CheckUnknown = result;
 * assert.match(unknown.reason, /maxSteps ran out/);
 * ```
 */
export interface CheckUnknown {
  /** `"unknown"`. */
  readonly ok: "unknown";
  /** Which budget ran out, and where. */
  readonly reason: string;
  /** The partition being searched; `undefined` when not partitioned. */
  readonly partitionKey: unknown;
  /** Search steps taken. */
  readonly steps: number;
}

/**
 * What {@linkcode checkLinearizable} returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CheckResult, checkLinearizable, registerModel } from "./linearizability.ts";
 * const result: CheckResult = checkLinearizable([], registerModel());
 * assert.equal(result.ok, true);
 * ```
 */
export type CheckResult = CheckOk | CheckFailure | CheckUnknown;

/**
 * Decides whether `history` is linearizable with respect to `model`: whether
 * all its completed operations, and any subset of its pending ones, fit in a
 * sequential order that respects real time and gives each completed
 * operation its observed result. Operations whose intervals touch (one's
 * response time equals the other's invoke time) count as concurrent.
 *
 * Partitions (`options.partition`) are checked one after another; the first
 * one that fails, or runs out of budget, decides the answer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinearizable, registerModel } from "./linearizability.ts";
 * import type { OpRecord } from "./history.ts";
 * const op = (worker: number, op: string, args: unknown[], invoke: number, response: number, result: unknown): OpRecord =>
 *   ({ worker, seq: 0, op, args, invoke, response, result, clock: 0 });
 * // write(1) completes, then a read that starts later returns the old value.
 * const stale = [op(0, "write", [1], 1, 2, undefined), op(1, "read", [], 3, 4, 0)];
 * const result = checkLinearizable(stale, registerModel(0));
 * assert(result.ok === false);
 * if (result.ok === false) assert(result.reason.includes("w1#0 read() -> 0"));
 * // With the read overlapping the write, returning 0 is fine.
 * const overlapping = [op(0, "write", [1], 1, 4, undefined), op(1, "read", [], 2, 3, 0)];
 * assert(checkLinearizable(overlapping, registerModel(0)).ok === true);
 * ```
 */
export function checkLinearizable<S>(
  history: History,
  model: Model<S>,
  options: CheckOptions = {},
): CheckResult {
  const budget: Budget = {
    steps: 0,
    maxSteps: options.maxSteps ?? Infinity,
    deadline: options.timeoutMs === undefined ? Infinity : performance.now() + options.timeoutMs,
  };
  const parts: Partition[] = options.partition
    ? partitionByKey(history, options.partition)
    : [{ key: undefined, history }];
  const linearizations: OpRecord[][] = [];
  for (const part of parts) {
    const outcome = search(part.history, model, budget);
    if (outcome.kind === "ok") {
      linearizations.push(outcome.order);
    } else if (outcome.kind === "unknown") {
      const where = options.partition ? ` in partition ${formatValue(part.key)}` : "";
      return {
        ok: "unknown",
        reason: `Gave up checking linearizability against the ${model.name} model${where}: ` +
          `${outcome.why} after ${budget.steps} steps over ${part.history.length} operations`,
        partitionKey: part.key,
        steps: budget.steps,
      };
    } else {
      return explainFailure(
        part,
        options.partition !== undefined,
        model,
        outcome.best,
        budget.steps,
      );
    }
  }
  return { ok: true, steps: budget.steps, linearizations };
}

/**
 * Thrown by {@linkcode assertLinearizable}; carries the check's result.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinearizable, LinearizabilityError, registerModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("read", [], () => 1);
 * const result = checkLinearizable(rec.records, registerModel(0));
 * assert(result.ok !== true);
 * assert.match(new LinearizabilityError(result).message, /Not linearizable/);
 * ```
 */
export class LinearizabilityError extends Error {
  /** The failed or inconclusive result. */
  readonly result: CheckFailure | CheckUnknown;
  /** Creates the error from a result that is not ok. */
  constructor(result: CheckFailure | CheckUnknown) {
    super(result.reason);
    this.name = "LinearizabilityError";
    this.result = result;
  }
}

/**
 * Like {@linkcode checkLinearizable}, but throws a
 * {@linkcode LinearizabilityError} with the report unless the history is
 * linearizable (an exhausted budget throws too).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertLinearizable, LinearizabilityError, queueModel } from "./linearizability.ts";
 * import { HistoryRecorder } from "./history.ts";
 * const rec = new HistoryRecorder(0);
 * rec.record("dequeue", [], () => 1); // nothing was enqueued
 * try {
 *   assertLinearizable(rec.records, queueModel());
 *   throw new Error("unreachable");
 * } catch (e) {
 *   assert(e instanceof LinearizabilityError && e.result.ok === false);
 * }
 * ```
 */
export function assertLinearizable<S>(
  history: History,
  model: Model<S>,
  options: CheckOptions = {},
): CheckOk {
  const result = checkLinearizable(history, model, options);
  if (result.ok !== true) throw new LinearizabilityError(result);
  return result;
}

interface Budget {
  steps: number;
  readonly maxSteps: number;
  readonly deadline: number;
}

/** A call or return event in the search's doubly linked list. */
interface Entry {
  /** Index of the operation in the partition's records. */
  readonly op: number;
  readonly time: number;
  /** For a call: its return, or null for a pending operation. For a return: null. */
  readonly ret: Entry | null;
  readonly isCall: boolean;
  prev: Entry | null;
  next: Entry | null;
}

type Outcome =
  | { kind: "ok"; order: OpRecord[] }
  | { kind: "fail"; best: number[] }
  | { kind: "unknown"; why: string };

/** Builds the sorted event list behind a sentinel head. */
function buildList(records: readonly OpRecord[]): Entry {
  const events: Entry[] = [];
  records.forEach((r, op) => {
    if (r.response !== null && !(r.response >= r.invoke)) {
      throw new RangeError(
        `Cannot check the history as a response must not precede its invocation: current record is ${
          formatRecord(r)
        }`,
      );
    }
    const ret: Entry | null = r.response === null
      ? null
      : { op, time: r.response, ret: null, isCall: false, prev: null, next: null };
    events.push({ op, time: r.invoke, ret, isCall: true, prev: null, next: null });
    if (ret) events.push(ret);
  });
  // Calls before returns at equal times: touching intervals overlap.
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);
  const head: Entry = { op: -1, time: -Infinity, ret: null, isCall: false, prev: null, next: null };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

/** Removes a call and its return from the list; they keep their own links for `unlift`. */
function lift(call: Entry): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.ret;
  if (ret) {
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  }
}

/** Undoes `lift(call)`, the last lift not yet undone: return first, then call. */
function unlift(call: Entry): void {
  const ret = call.ret;
  if (ret) {
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
  }
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

/** The set of linearized operations as a string of 16-bit words, for the cache. */
function bitsKey(bits: Uint16Array): string {
  if (bits.length <= 4096) return String.fromCharCode.apply(null, bits as unknown as number[]);
  let s = "";
  for (let i = 0; i < bits.length; i += 4096) {
    s += String.fromCharCode.apply(null, bits.subarray(i, i + 4096) as unknown as number[]);
  }
  return s;
}

function resultFits<S>(model: Model<S>, expected: unknown, r: OpRecord): boolean {
  if (r.response === null || expected === anyResult) return true;
  return model.equalResult
    ? model.equalResult(expected, r.result, r.op, r.args)
    : defaultEqual(expected, r.result);
}

/**
 * WGL search over one partition. Invariants: the list holds exactly the
 * events of operations not on the stack, in time order; `state` is the model
 * state after the stack's operations in stack order; `bits` marks the stack's
 * operations; `remaining` counts completed operations not on the stack.
 */
function search<S>(records: readonly OpRecord[], model: Model<S>, budget: Budget): Outcome {
  const head = buildList(records);
  const stateKey = model.key ? (s: S) => model.key!(s) : canonicalKey;
  const bits = new Uint16Array(Math.ceil(records.length / 16));
  const cache = new Set<string>();
  const stack: { call: Entry; state: S }[] = [];
  // The best prefix so far: most completed operations, then fewest pending ones.
  let best: number[] = [];
  let bestPending = 0;
  const completed = records.filter((r) => r.response !== null).length;
  let remaining = completed;
  let state = model.init();
  let entry = head.next;
  while (remaining > 0) {
    budget.steps++;
    if (budget.steps > budget.maxSteps) return { kind: "unknown", why: "maxSteps ran out" };
    if ((budget.steps & 1023) === 0 && performance.now() > budget.deadline) {
      return { kind: "unknown", why: "timeoutMs ran out" };
    }
    // A completed operation's return is still in the list, so the walk meets it before the end.
    const e = entry!;
    if (e.isCall) {
      const r = records[e.op];
      const next = model.step(state, r.op, r.args);
      if (resultFits(model, next.result, r)) {
        bits[e.op >> 4] |= 1 << (e.op & 15);
        const key = `${bitsKey(bits)}\u0000${stateKey(next.state)}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ call: e, state });
          state = next.state;
          lift(e);
          if (r.response !== null) remaining--;
          const done = completed - remaining;
          const bestDone = best.length - bestPending;
          if (done > bestDone || (done === bestDone && stack.length - done < bestPending)) {
            best = stack.map((f) => f.call.op);
            bestPending = stack.length - done;
          }
          entry = head.next;
          continue;
        }
        bits[e.op >> 4] &= ~(1 << (e.op & 15));
      }
      entry = e.next;
    } else {
      // An operation that must already be linearized is not: undo the last choice.
      const top = stack.pop();
      if (top === undefined) return { kind: "fail", best };
      state = top.state;
      const op = top.call.op;
      bits[op >> 4] &= ~(1 << (op & 15));
      unlift(top.call);
      if (records[op].response !== null) remaining++;
      entry = top.call.next;
    }
  }
  return { kind: "ok", order: stack.map((f) => records[f.call.op]) };
}

/** The report lists at most this many operations of the prefix, the last ones. */
const REPORT_PREFIX_LINES = 20;

function explainFailure<S>(
  part: Partition,
  partitioned: boolean,
  model: Model<S>,
  best: readonly number[],
  steps: number,
): CheckFailure {
  const records = part.history;
  let state = model.init();
  for (const i of best) state = model.step(state, records[i].op, records[i].args).state;
  const inPrefix = new Set(best);
  const rest = records.filter((_, i) => !inPrefix.has(i));
  // The search failed, so some completed operation is outside the prefix.
  let deadline = rest.find((r) => r.response !== null)!;
  for (const r of rest) {
    if (r.response !== null && r.response < deadline.response!) deadline = r;
  }
  const candidates: Candidate[] = rest
    .filter((r) => r.invoke <= deadline.response!)
    .map((record) => ({ record, expected: model.step(state, record.op, record.args).result }));

  const completed = records.filter((r) => r.response !== null).length;
  const pending = records.length - completed;
  const where = partitioned ? ` (partition ${formatValue(part.key)})` : "";
  const show = (v: unknown) => v === anyResult ? "anything" : formatValue(v);
  const hidden = best.length - Math.min(best.length, REPORT_PREFIX_LINES);
  const lines = [
    `Not linearizable against the ${model.name} model${where}: no order of its ` +
    `${records.length} operations (${completed} completed, ${pending} pending) ` +
    "respects real time and every result.",
    `Longest linearizable prefix found (${best.length} operations):`,
    ...(hidden > 0 ? [`  … ${hidden} earlier operations (see longestPrefix)`] : []),
    ...best.slice(hidden).map((i, n) => `  ${hidden + n + 1}. ${formatRecord(records[i])}`),
    `Model state after it: ${formatValue(state)}`,
    `Next must come an operation invoked no later than ${deadline.response} (when ` +
    `w${deadline.worker}#${deadline.seq} responded), but none can:`,
    ...candidates.map((c) => {
      const verdict = !resultFits(model, c.expected, c.record)
        ? `model expects ${show(c.expected)}`
        : c.record.response === null
        ? "may take effect here, but no order goes on from there"
        : "fits here, but no order goes on from there";
      return `  ${formatRecord(c.record)}: ${verdict}`;
    }),
  ];
  const later = rest.length - candidates.length;
  if (later > 0) lines.push(`${later} more operations were invoked after ${deadline.response}.`);
  lines.push("The fault lies at the end of the prefix or earlier, in the order chosen before it.");
  return {
    ok: false,
    reason: lines.join("\n"),
    partitionKey: part.key,
    longestPrefix: best.map((i) => records[i]),
    stateAfterPrefix: state,
    deadline,
    candidates,
    steps,
  };
}
