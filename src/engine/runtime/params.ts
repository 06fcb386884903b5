/**
 * Named parameter store: name → Float32Array + dims, the state optimizers update in place.
 * Built from a graph's float32 initializers; written back into a graph (or fed to a training
 * session whose parameters were promoted to inputs) without changing names.
 * Copies use TypedArray.slice, a byte copy (bit-exact, NaN payloads included), never
 * Float32Array.from, which goes through JS numbers.
 */
import { Graph, Tensor, numel } from '../onnx/types';

export interface Param {
  readonly name: string;
  readonly dims: readonly number[];
  /** Updated in place by optimizers; never replaced. */
  readonly data: Float32Array;
}

/** Gradients (or any per-parameter arrays) by parameter name. */
export type GradMap = ReadonlyMap<string, Float32Array>;

export class ParamStore {
  private readonly params = new Map<string, Param>();

  /** Insertion order is kept (it is the order checkpoints and optimizers walk). */
  set(name: string, dims: readonly number[], data: Float32Array): Param {
    if (numel(dims) !== data.length)
      throw new Error(`param ${name}: ${data.length} values for dims [${dims.join(',')}]`);
    if (this.params.has(name)) throw new Error(`param ${name}: already in the store`);
    const p: Param = { name, dims: [...dims], data };
    this.params.set(name, p);
    return p;
  }

  /**
   * Copy the named float32 initializers of `g` (default: every float32 initializer, which also
   * catches fixed constants — pass the net's `paramNames` to keep only trainable ones).
   */
  static fromGraph(g: Graph, names?: readonly string[]): ParamStore {
    const s = new ParamStore();
    const pick =
      names ?? [...g.initializers].filter(([, t]) => t.dtype === 'float32').map(([k]) => k);
    for (const n of pick) {
      const t = g.initializers.get(n);
      if (!t) throw new Error(`ParamStore.fromGraph: ${n} is not an initializer of ${g.name}`);
      if (t.dtype !== 'float32')
        throw new Error(`ParamStore.fromGraph: ${n} is ${t.dtype}, parameters are float32`);
      s.set(n, t.dims, (t.data as Float32Array).slice());
    }
    return s;
  }

  /** Build from tensors (a checkpoint's initializers); float32 only; data are copied. */
  static fromTensors(tensors: Iterable<[string, Tensor]>): ParamStore {
    const s = new ParamStore();
    for (const [n, t] of tensors) {
      if (t.dtype !== 'float32') throw new Error(`param ${n}: ${t.dtype}, parameters are float32`);
      s.set(n, t.dims, (t.data as Float32Array).slice());
    }
    return s;
  }

  get(name: string): Param {
    const p = this.params.get(name);
    if (!p) throw new Error(`no parameter named ${name}`);
    return p;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  names(): string[] {
    return [...this.params.keys()];
  }

  values(): IterableIterator<Param> {
    return this.params.values();
  }

  [Symbol.iterator](): IterableIterator<Param> {
    return this.params.values();
  }

  get size(): number {
    return this.params.size;
  }

  /** Total number of scalars. */
  get numel(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.data.length;
    return n;
  }

  /** Deep copy (EMA shadows, snapshots). */
  clone(): ParamStore {
    const s = new ParamStore();
    for (const p of this.params.values()) s.set(p.name, p.dims, p.data.slice());
    return s;
  }

  /** Overwrite values from a store with the same names and dims. */
  copyFrom(other: ParamStore): void {
    for (const p of this.params.values()) {
      const q = other.get(p.name);
      if (q.data.length !== p.data.length || q.dims.join() !== p.dims.join())
        throw new Error(`param ${p.name}: dims [${q.dims}] where [${p.dims}] expected`);
      p.data.set(q.data);
    }
  }

  /** Views as engine tensors (no copy): feeds for a session whose params are inputs. */
  tensors(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const p of this.params.values())
      out[p.name] = { dtype: 'float32', dims: [...p.dims], data: p.data };
    return out;
  }

  /**
   * A graph equal to `g` with these parameters as its initializers (copies, so later optimizer
   * steps do not change the returned graph). Every parameter must already be an initializer of
   * `g` with the same dims: a mismatch means the wrong graph, and is an error.
   */
  writeTo(g: Graph): Graph {
    const initializers = new Map(g.initializers);
    for (const p of this.params.values()) {
      const t = initializers.get(p.name);
      if (!t) throw new Error(`ParamStore.writeTo: ${p.name} is not an initializer of ${g.name}`);
      if (t.dtype !== 'float32' || t.dims.join() !== p.dims.join())
        throw new Error(
          `ParamStore.writeTo: ${p.name} is ${t.dtype}[${t.dims}] in ${g.name}, store has float32[${p.dims}]`,
        );
      initializers.set(p.name, {
        dtype: 'float32',
        dims: [...p.dims],
        data: p.data.slice(),
      });
    }
    return { ...g, initializers, nodes: [...g.nodes], values: new Map(g.values) };
  }

  /** Zero-filled arrays shaped like every parameter (optimizer state). */
  zerosLike(): Map<string, Float32Array> {
    const m = new Map<string, Float32Array>();
    for (const p of this.params.values()) m.set(p.name, new Float32Array(p.data.length));
    return m;
  }
}

/** Check a gradient map covers exactly the store's parameters with matching sizes. */
export function checkGrads(params: ParamStore, grads: GradMap, who: string): void {
  for (const p of params) {
    const g = grads.get(p.name);
    if (!g) throw new Error(`${who}: no gradient for parameter ${p.name}`);
    if (g.length !== p.data.length)
      throw new Error(`${who}: gradient of ${p.name} has ${g.length} values, not ${p.data.length}`);
  }
}
