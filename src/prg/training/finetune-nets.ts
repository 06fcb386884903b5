/**
 * The nets a fine-tune run trains: the base model's velocity net (or, for the no-pretraining
 * ablation of paper §4.5, a randomly initialised one of the same architecture) and its head — kept
 * when the classes, feature pooling and width stay the same, else a new head for the dataset's
 * classes — as one parameter store.
 */
import { Graph } from '../../engine/onnx/types';
import { ParamStore } from '../../engine/runtime/params';
import { paramNamesOf, withParamNames } from '../features';
import { buildHead } from '../heads';
import { featureDim } from '../model-dir/graph-check';
import { ModelManifest } from '../manifest';
import { LoadedModelDir } from '../model-dir/io';
import { buildVelocityNet, VelocityNetKind } from '../nets';
import { paramStoreOf, prepareNets } from './finetune';

export interface FineTuneNetsOptions {
  /** The training set's class names. */
  classes: readonly string[];
  /** Head input: null = flattened x_t, n = pooled to n×n. */
  pool: number | null;
  /** Head width when a new head is built (default: the base model's); setting it builds one. */
  hidden?: number;
  noPretrain?: boolean;
  batchSize: number;
  seed: number;
}

export interface FineTuneNets {
  /** The new model's classes: the base model's order when its head is kept. */
  classes: string[];
  hidden: number;
  /** The nets as exported (parameter names as in the model directory). */
  velocity: Graph;
  head: Graph;
  velocityNames: string[];
  headNames: string[];
  /** The nets specialised to the batch size, for the training step. */
  prepared: { velocity: Graph; head: Graph };
  /** Every parameter of both nets (head ones under HEAD_PREFIX), trained in place. */
  params: ParamStore;
}

function sameClasses(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c) => b.includes(c));
}

/**
 * Why the flow of `m` cannot be fine-tuned with these settings (null = it can): an imported graph
 * with ops that have no VJP rule is inference-only, so only its head trains (freezeFlow).
 */
export function flowTrainingProblem(m: ModelManifest, freezeFlow: boolean): string | null {
  const ops = m.architecture.velocity.untrainableOps;
  if (!ops?.length || freezeFlow) return null;
  return (
    `model ${m.name}@${m.version} is inference-only: its velocity net uses ops with no gradient ` +
    `rule (${ops.join(', ')}); fine-tune the head only (freezeFlow: true, \`--freeze-flow\`)`
  );
}

export function fineTuneNets(base: LoadedModelDir, o: FineTuneNetsOptions): FineTuneNets {
  const bm = base.manifest;
  if (o.noPretrain && bm.architecture.velocity.kind === 'onnx')
    throw new Error(
      `model ${bm.name}: an imported ONNX graph has no architecture here to re-initialise ` +
        '(no-pretrain needs a unet or dit model)',
    );
  const keepHead = sameClasses(o.classes, bm.classes) && o.pool === bm.featurePool && !o.hidden;
  const classes = keepHead ? [...bm.classes] : [...o.classes];
  let velocity = base.velocity;
  if (o.noPretrain) {
    const arch = bm.architecture.velocity;
    const net = buildVelocityNet({
      kind: arch.kind as VelocityNetKind,
      preset: arch.preset ?? 'XS',
      inputShape: [bm.input.channels, bm.input.height, bm.input.width],
      seed: o.seed + 17,
      overrides: arch.config as Record<string, never>,
    });
    velocity = withParamNames(net.graph, net.paramNames);
  }
  const hidden = o.hidden ?? bm.architecture.head.hidden;
  let head = base.head;
  if (!keepHead) {
    const built = buildHead({
      kind: bm.architecture.head.kind,
      inputDim: featureDim({ input: bm.input, featurePool: o.pool }),
      hidden,
      classes: classes.length,
      seed: o.seed + 1,
    });
    head = withParamNames(built.graph, built.paramNames);
  }
  // A class-conditional net trains on its null class, the label features are served with.
  const prepared = prepareNets(
    velocity,
    head,
    o.batchSize,
    bm.architecture.velocity.labels?.nullClass,
  );
  return {
    classes,
    hidden,
    velocity,
    head,
    velocityNames: paramNamesOf(velocity),
    headNames: paramNamesOf(head),
    prepared,
    params: paramStoreOf(prepared.velocity, prepared.head),
  };
}
