/**
 * Epoch arithmetic. The global epoch counts up by one and wraps, but skips
 * 0, since a worker's epoch word holds 0 while it is not pinned: after -1
 * comes 1. A block retired at epoch e may be freed once the epoch has
 * advanced twice since, so the distance between two epochs must count the
 * advances between them, one fewer than their difference where the count
 * crossed 0. (Subtraction alone once freed a block retired at -1 at epoch 1,
 * after a single advance, while a worker pinned at -1 could still read it.)
 *
 * @module
 */

/** The epoch after `epoch`. */
export function nextEpoch(epoch: number): number {
  const next = (epoch + 1) | 0;
  return next === 0 ? 1 : next;
}

/**
 * How many advances lead from epoch `then` to epoch `now`, for `then` at or
 * before `now` and less than 2^30 advances apart.
 */
export function epochsBetween(then: number, now: number): number {
  const difference = (now - then) | 0;
  return then < 0 && now > 0 ? difference - 1 : difference;
}

/** The epoch `advances` advances before `now` (fewer than 2^30). */
export function epochBefore(now: number, advances: number): number {
  const then = (now - advances) | 0;
  return now > 0 && then <= 0 ? (then - 1) | 0 : then;
}
