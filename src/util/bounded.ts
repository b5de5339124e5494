/**
 * Bounded insertion-ordered collections: the newest entry goes last, and the oldest is dropped once the
 * bound is passed. For caches whose size a peer's input decides (keys of strangers, refused dial ids, dead
 * processes), where forgetting the oldest is safe.
 */

/** Sets `key` as the newest entry of `map`, dropping the oldest beyond `max`. */
export function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

/** Adds `key` as the newest member of `set`, dropping the oldest beyond `max`. */
export function rememberKey<K>(set: Set<K>, key: K, max: number): void {
  set.delete(key);
  set.add(key);
  if (set.size > max) set.delete(set.values().next().value as K);
}
