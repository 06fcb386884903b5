/**
 * Test fixture: the fine-tuning step (finetune.ts) of a tiny model (tiny-model.ts, 3 classes,
 * [1, 8, 8], features pooled to 4×4) at batch 2: K = 3 steps to t* = 0.6, fresh parameters.
 */
import { ParamStore } from '../../engine/runtime/params';
import { readModelDir } from '../model-dir/io';
import {
  FineTuneGraphConfig,
  FineTuneStep,
  FineTuneStepOptions,
  paramStoreOf,
  prepareNets,
} from '../training/finetune';

export const TINY_STEP_BATCH = 2;

export async function tinyFineTuneStep(
  modelDir: string,
  cfg: Partial<FineTuneGraphConfig>,
  opts: FineTuneStepOptions = {},
): Promise<{ step: FineTuneStep; params: ParamStore }> {
  const m = await readModelDir(modelDir);
  const nets = prepareNets(m.velocity, m.head, TINY_STEP_BATCH);
  const params = paramStoreOf(nets.velocity, nets.head);
  const full: FineTuneGraphConfig = {
    batch: TINY_STEP_BATCH,
    classes: 3,
    solver: 'euler',
    steps: 3,
    tStar: 0.6,
    pool: 4,
    lambdaFlow: 0.5,
    freezeFlow: false,
    mode: 'direct',
    ...cfg,
  };
  const step = await FineTuneStep.create(nets.velocity, nets.head, full, { threads: 1 }, opts);
  return { step, params };
}
