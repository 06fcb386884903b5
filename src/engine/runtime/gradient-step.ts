/**
 * GradientStep: one ORT session over the gradient graph of a scalar loss, with the parameters
 * lifted to graph inputs (docs/engineering.md: one session serves every step). A step feeds the
 * ParamStore's arrays (no copy) plus the batch, and returns the loss and a gradient per
 * parameter as Float32Arrays keyed by parameter name: what optimizers and training loops consume.
 */
import { vjp } from '../autodiff';
import { promoteInitializers, pruneGraph } from '../onnx/graph-utils';
import { Graph, isStatic, numel } from '../onnx/types';
import { ParamStore } from './params';
import { Feeds, SessionCache, SessionLease, SessionOptions, sessionCache } from './session';

export interface GradientGraphOptions {
  /** Name of the scalar loss value in the forward graph. */
  loss: string;
  /** Initializers to differentiate (the trainable parameters). */
  params: readonly string[];
  /** Other forward values to return with each step (e.g. logits for accuracy). */
  outputs?: readonly string[];
}

export interface GradientGraph {
  /** Forward + backward graph; parameters are inputs; outputs = loss, grads, extra outputs. */
  graph: Graph;
  /** param name → gradient output name. */
  grads: Record<string, string>;
}

/** Build the training graph: promote params to inputs, append the VJP of the loss, prune. */
export function buildGradientGraph(forward: Graph, o: GradientGraphOptions): GradientGraph {
  const lossInfo = forward.values.get(o.loss);
  if (!lossInfo) throw new Error(`GradientStep: ${o.loss} is not a value of graph ${forward.name}`);
  if (!isStatic(lossInfo.shape) || numel(lossInfo.shape) !== 1)
    throw new Error(
      `GradientStep: loss ${o.loss} must be a scalar, has shape [${lossInfo.shape.join(',')}]`,
    );
  if (o.params.length === 0) throw new Error('GradientStep: no parameters to differentiate');
  const promoted = promoteInitializers(forward, [...o.params]);
  const res = vjp(promoted, { of: [o.loss], wrt: [...o.params], seed: 'ones' });
  const keep = [o.loss, ...(o.outputs ?? []), ...o.params.map((p) => res.grads[p])];
  return { graph: pruneGraph(res.graph, keep), grads: res.grads };
}

export interface GradientStepOptions extends GradientGraphOptions {
  session?: SessionOptions;
  /** Session cache to share (default: the process-wide one). */
  cache?: SessionCache;
}

export interface StepResult {
  loss: number;
  grads: Map<string, Float32Array>;
  /** The extra forward outputs asked for in `outputs`. */
  outputs: Feeds;
}

export class GradientStep {
  private constructor(
    private readonly lease: SessionLease,
    readonly graph: Graph,
    readonly paramNames: readonly string[],
    private readonly gradNames: Record<string, string>,
    private readonly loss: string,
    private readonly extra: readonly string[],
  ) {}

  static async create(forward: Graph, o: GradientStepOptions): Promise<GradientStep> {
    const { graph, grads } = buildGradientGraph(forward, o);
    const lease = await (o.cache ?? sessionCache).acquire(graph, o.session);
    return new GradientStep(lease, graph, [...o.params], grads, o.loss, o.outputs ?? []);
  }

  /** Batch inputs the step needs besides the parameters. */
  get dataInputs(): string[] {
    const params = new Set(this.paramNames);
    return this.lease.session.inputNames.filter((n) => !params.has(n));
  }

  async run(params: ParamStore, batch: Feeds): Promise<StepResult> {
    const feeds: Feeds = { ...batch };
    const inputs = new Set(this.lease.session.inputNames);
    for (const n of this.paramNames) {
      const p = params.get(n);
      // A parameter that does not reach the loss is pruned from the graph: feed only live ones.
      if (inputs.has(n)) feeds[n] = { dtype: 'float32', dims: [...p.dims], data: p.data };
    }
    const fetch = [this.loss, ...this.extra, ...this.paramNames.map((n) => this.gradNames[n])];
    const out = await this.lease.session.run(feeds, [...new Set(fetch)]);
    const loss = Number(out[this.loss].data[0]);
    const grads = new Map<string, Float32Array>();
    for (const n of this.paramNames) {
      const g = out[this.gradNames[n]];
      if (!(g.data instanceof Float32Array))
        throw new Error(`GradientStep: gradient of ${n} is ${g.dtype}, not float32`);
      grads.set(n, g.data);
    }
    const outputs: Feeds = {};
    for (const n of this.extra) outputs[n] = out[n];
    return { loss, grads, outputs };
  }

  async release(): Promise<void> {
    await this.lease.release();
  }
}
