/**
 * One flat Float32Array per step: the gradients of a model's trainable variables laid end to end, in
 * the order of the variable list, so that one all-reduce carries them all (docs/TRAINING.md).
 */
import type * as tf from '@tensorflow/tfjs';
import { fail } from '../errors.js';

/** Where each variable sits in the flat vector. */
export interface FlatLayout {
  readonly names: readonly string[];
  readonly shapes: readonly (readonly number[])[];
  readonly offsets: readonly number[];
  /** Total elements. */
  readonly size: number;
}

export function layoutOf(variables: readonly tf.Variable[]): FlatLayout {
  const offsets: number[] = [];
  let size = 0;
  for (const v of variables) {
    offsets.push(size);
    size += v.size;
  }
  return { names: variables.map((v) => v.name), shapes: variables.map((v) => v.shape), offsets, size };
}

/** Copies `tensors` (one per layout entry, in order) into `out` starting at `start`. */
export async function flattenInto(
  layout: FlatLayout,
  tensors: readonly tf.Tensor[],
  out: Float32Array,
  start = 0,
): Promise<void> {
  if (tensors.length !== layout.names.length) {
    throw fail('invalid_argument', `${tensors.length} tensors for a layout of ${layout.names.length}`);
  }
  for (const [i, t] of tensors.entries()) {
    const values = await t.data();
    out.set(values as Float32Array, start + layout.offsets[i]!);
  }
}

/** The layout's slices of `flat` (from `start`) as tensors, keyed by variable name. */
export function unflatten(
  tfjs: typeof tf,
  layout: FlatLayout,
  flat: Float32Array,
  start = 0,
): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  for (const [i, name] of layout.names.entries()) {
    const from = start + layout.offsets[i]!;
    const shape = layout.shapes[i]!;
    const n = shape.reduce((a, b) => a * b, 1);
    out[name] = tfjs.tensor(flat.slice(from, from + n), [...shape], 'float32');
  }
  return out;
}
