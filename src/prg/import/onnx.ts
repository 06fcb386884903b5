/**
 * `prg import onnx`: a user's own velocity net exported to ONNX, with a declared contract (which
 * input is the image, which the time, which output the velocity; the time convention and scale;
 * optionally a class-label input). The graph is wrapped so the model directory's velocity
 * contract is this project's:
 *
 *   x [N, C, H, W] float32, t [N] float32 (data at t = 0) [, y [N] int64] → v [N, C, H, W]
 *
 *   data at t = 0 (ours):               v(x, t) = v_user(x, s · t)
 *   data at t = 1 (SiT, torchcfm):      v(x, t) = −v_user(x, s · (1 − t))   (./convention.ts)
 *
 * with s the declared t scale (e.g. 1000 for nets fed integer-like timesteps). The wrapped graph
 * is smoke-run (finite output of x's shape) before anything is written. It is trainable when every
 * op on the gradient path from its parameters and x to v has a VJP rule (src/engine/autodiff);
 * otherwise the missing op types are recorded and only its head can be fine-tuned.
 */
import { promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { opsWithoutRule } from '../../engine/autodiff';
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { decodeModel } from '../../engine/onnx/proto';
import { Graph, Tensor, ValueInfo, numel } from '../../engine/onnx/types';
import { runGraph } from '../../engine/runtime/session';
import { namespaced, paramNamesOf, withParamNames } from '../features';
import { ClassLabels, ImportProvenance, InterpolantName } from '../manifest';
import { Rng } from '../rng';
import { CONVENTION_TRANSFORM } from './convention';
import { ImportedNet, sha256File } from './plan';

export const TIME_CONVENTIONS = ['data-at-0', 'data-at-1'] as const;
export type TimeConvention = (typeof TIME_CONVENTIONS)[number];

/** What the user declares about their graph. */
export interface OnnxContract {
  /** Names in the user's graph. */
  input: string;
  time: string;
  output: string;
  /** The class-label input (int64 or int32 [N]); with it, `labels` is required. */
  label?: string;
  /** Where the data sits: t = 0 (this project) or t = 1 (SiT, torchcfm; flipped on import). */
  convention: TimeConvention;
  /** The user's net is fed s · t (after the flip); 1 = raw t ∈ [0, 1]. */
  tScale: number;
}

export interface OnnxImportOptions {
  contract: OnnxContract;
  labels?: ClassLabels;
  /** The probability path the net was trained on (fine-tuning's flow-matching term uses it). */
  interpolant: InterpolantName;
  /** Smoke-run batch (default 2). */
  smokeBatch?: number;
}

/** A VelocityNet-like record for an imported graph: it has no builder config here. */
export interface OnnxNetConfig {
  contract: OnnxContract;
  inputShape: number[];
  /** Parameters the autodiff may train: float32 initializers that are not exporter constants. */
  trainableParams: number;
}

function fail(file: string, msg: string): never {
  throw new Error(`${file}: ${msg}`);
}

function findInput(g: Graph, name: string, file: string, what: string): ValueInfo {
  const v = g.inputs.find((i) => i.name === name);
  if (!v) fail(file, `the graph has no input "${name}" (${what}); its inputs: ${names(g.inputs)}`);
  return v;
}

const names = (vs: ValueInfo[]) => vs.map((v) => `${v.name} ${v.dtype}[${v.shape}]`).join(', ');

/**
 * Which initializers are parameters: float32 tensors of more than one element, except the
 * constants exporters fold into initializers (PyTorch names them `onnx::Op_N`). Parameters keep
 * their state_dict names (`blocks.0.attn.qkv.weight`) under both PyTorch exporters.
 */
export function onnxParamNames(g: Graph): string[] {
  // A graph written by this project says which initializers are parameters.
  if (g.metadata?.['prg.params']) return paramNamesOf(g);
  return [...g.initializers]
    .filter(([k, t]) => t.dtype === 'float32' && numel(t.dims) > 1 && !k.startsWith('onnx::'))
    .map(([k]) => k);
}

/** The applied transform as recorded, e.g. `v(x, t) = -v_upstream(x, 1000 * (1 - t))`. */
function transformOf(c: OnnxContract): string {
  if (c.convention === 'data-at-0')
    return `v(x, t) = v_user(x, ${c.tScale === 1 ? '' : `${c.tScale} * `}t)`;
  return c.tScale === 1
    ? CONVENTION_TRANSFORM
    : CONVENTION_TRANSFORM.replace('1 - t', `${c.tScale} * (1 - t)`);
}

/** Wrap the user's graph so that it takes x, t (this project's convention) [, y] and gives v. */
export function wrapOnnxVelocity(user: Graph, c: OnnxContract, file: string): Graph {
  const x = findInput(user, c.input, file, '--input, the image');
  const t = findInput(user, c.time, file, '--time, the time');
  const y = c.label ? findInput(user, c.label, file, '--label-input, the class label') : undefined;
  const declared = new Set([c.input, c.time, c.label].filter(Boolean));
  const extra = user.inputs.filter((i) => !declared.has(i.name));
  if (extra.length)
    fail(file, `inputs not in the contract: ${names(extra)} (give them as initializers)`);
  const out = user.outputs.find((o) => o.name === c.output);
  if (!out)
    fail(
      file,
      `the graph has no output "${c.output}" (--output); its outputs: ${names(user.outputs)}`,
    );
  if (x.dtype !== 'float32' || x.shape.length !== 4)
    fail(file, `input ${x.name} is ${x.dtype}[${x.shape}]; the image must be float32 [N, C, H, W]`);
  const chw = x.shape.slice(1);
  if (!chw.every((d) => typeof d === 'number'))
    fail(file, `input ${x.name} has shape [${x.shape}]: C, H and W must be fixed numbers`);
  const tRank2 = t.shape.length === 2 && t.shape[1] === 1;
  if (t.dtype !== 'float32' || !(t.shape.length === 1 || tRank2))
    fail(file, `input ${t.name} is ${t.dtype}[${t.shape}]; the time must be float32 [N] or [N, 1]`);
  if (y && (!(y.dtype === 'int64' || y.dtype === 'int32') || y.shape.length !== 1))
    fail(file, `input ${y.name} is ${y.dtype}[${y.shape}]; the label must be int64 or int32 [N]`);
  if (out.dtype !== 'float32' || out.shape.length !== 4)
    fail(
      file,
      `output ${out.name} is ${out.dtype}[${out.shape}]; the velocity must be [N, C, H, W]`,
    );
  if (!(Number.isFinite(c.tScale) && c.tScale > 0))
    fail(file, `--t-scale ${c.tScale}: must be a positive number`);

  // Constants of the user's graph go under "user/", so they never meet the wrapper's own.
  const params = onnxParamNames(user);
  const inner = namespaced(withParamNames(user, params), 'user/');
  const b = new GraphBuilder('onnx_velocity');
  const xv = b.input('x', ['N', ...chw]);
  const tv = b.input('t', ['N']);
  const yv = y ? b.input('y', ['N'], 'int64') : undefined;
  let tu: Value = c.convention === 'data-at-1' ? b.sub(1, tv) : tv;
  if (c.tScale !== 1) tu = b.mul(tu, c.tScale);
  if (tRank2) tu = b.unsqueeze(tu, [1]);
  const feeds: Record<string, Value> = { [c.input]: xv, [c.time]: tu };
  if (y && yv) feeds[y.name] = y.dtype === 'int64' ? yv : b.cast(yv, 'int32');
  const v = b.call(inner, feeds, { prefix: 'user' })[c.output];
  b.output(c.convention === 'data-at-1' ? b.neg(v) : b.identity(v), 'v');
  const g = b.build();
  g.metadata = { 'prg.convention': transformOf(c) };
  return withParamNames(g, params);
}

/**
 * Run the wrapped graph once on random inputs: the output must be finite and of x's shape (a
 * wrong contract — swapped names, a t the net does not expect — usually fails here, not later).
 */
export async function smokeRun(g: Graph, file: string, labels?: ClassLabels, n = 2): Promise<void> {
  const x = g.inputs.find((i) => i.name === 'x')!;
  const dims = [n, ...(x.shape.slice(1) as number[])];
  const rng = new Rng(0);
  const data = new Float32Array(numel(dims));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  const feeds: Record<string, Tensor> = {
    x: { dtype: 'float32', dims, data },
    t: {
      dtype: 'float32',
      dims: [n],
      data: Float32Array.from({ length: n }, (_, i) => (i + 1) / (n + 1)),
    },
  };
  if (labels)
    feeds.y = {
      dtype: 'int64',
      dims: [n],
      data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i === 0 ? labels.nullClass : 0)),
    };
  let v: Tensor | undefined;
  try {
    v = (await runGraph(g, feeds)).v;
  } catch (e) {
    fail(file, `smoke run failed on x [${dims}], t [${n}]: ${(e as Error).message}`);
  }
  if (!v || v.dims.join() !== dims.join())
    fail(file, `smoke run: the velocity has shape [${v?.dims}], the image [${dims}]`);
  const out = v.data as Float32Array;
  const bad = out.findIndex((a) => !Number.isFinite(a));
  if (bad >= 0) fail(file, `smoke run: the velocity is not finite (value ${out[bad]} at ${bad})`);
}

/** Read, wrap, smoke-run and check trainability of a user's velocity ONNX. */
export async function importOnnx(
  file: string,
  o: OnnxImportOptions,
): Promise<ImportedNet<OnnxNetConfig> & { untrainableOps: string[] }> {
  const c = o.contract;
  if (c.label && !o.labels)
    fail(file, `--label-input ${c.label}: declare --num-classes (and --null-class)`);
  if (!c.label && o.labels) fail(file, '--num-classes given, but no --label-input');
  let user: Graph;
  try {
    user = decodeModel(await fs.readFile(file));
  } catch (e) {
    fail(file, (e as Error).message);
  }
  const velocity = wrapOnnxVelocity(user, c, file);
  await smokeRun(velocity, file, o.labels, o.smokeBatch);
  const params = paramNamesOf(velocity);
  const untrainableOps = opsWithoutRule(velocity, ['v'], [...params, 'x']);
  const count = params.reduce((a, n) => a + numel(velocity.initializers.get(n)!.dims), 0);
  const x = velocity.inputs.find((i) => i.name === 'x')!;
  const inputShape = x.shape.slice(1) as number[];
  const contract = { ...c, ...(o.labels ? { labels: o.labels } : {}) };
  const provenance: ImportProvenance = {
    family: 'onnx',
    source: {
      file: basename(file),
      sha256: await sha256File(file),
      bytes: (await fs.stat(file)).size,
      format: 'onnx',
      stateDict: 'graph initializers',
    },
    upstream: {
      graph: user.name,
      inputs: user.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape}]`),
      outputs: user.outputs.map((i) => `${i.name} ${i.dtype}[${i.shape}]`),
      trainableParams: params.length,
      ...(untrainableOps.length ? { untrainableOps } : {}),
    },
    // The parameters keep their names: the mapping is the identity on them.
    mapping: Object.fromEntries(params.map((n) => [n, n])),
    convention: {
      upstream:
        c.convention === 'data-at-1'
          ? `data at t = 1, noise at t = 0, fed ${c.tScale} * t`
          : `data at t = 0, noise at t = 1, fed ${c.tScale} * t`,
      transform: velocity.metadata?.['prg.convention'] ?? '',
    },
    contract,
  };
  return {
    plan: {
      family: 'onnx',
      kind: 'onnx',
      net: {
        graph: velocity,
        params: count,
        paramNames: params,
        config: { contract: c, inputShape, trainableParams: params.length },
      },
      map: new Map(),
      ignored: {},
      trainable: params,
      upstream: provenance.upstream,
      interpolant: o.interpolant,
      labels: o.labels,
    },
    velocity,
    report: { mapped: params.length, missing: [], misshaped: [], unmapped: [], ignored: {} },
    provenance,
    untrainableOps,
  };
}
