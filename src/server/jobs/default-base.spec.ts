import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelManifest } from '../../prg/manifest';
import { createTinyModel } from '../../prg/testing/tiny-model';
import { baseFlowName, defaultFineTuneBase, fineTuneOutputName } from './default-base';

const root = fs.mkdtemp(join(tmpdir(), 'prg-default-base-'));
afterAll(async () => fs.rm(await root, { recursive: true, force: true }));

const withProvenance = (m: ModelManifest, p: Record<string, unknown>): ModelManifest => ({
  ...m,
  provenance: { ...m.provenance, ...p },
});

describe("a fine-tune job's default base", () => {
  it("is the default model's flow-<dataset> when installed and a pretrained flow, else the default model", async () => {
    const r0 = await root;
    const cls = await createTinyModel(join(r0, 'prg-tiny'), { name: 'prg-tiny' });
    const fl = await createTinyModel(join(r0, 'flow-tiny'), { name: 'flow-tiny' });
    const dflt = {
      id: 'prg-tiny@1',
      dir: cls.dir,
      manifest: withProvenance(cls.manifest, { dataset: 'tiny:train', phase: 'finetune' }),
    };
    const flow = {
      id: 'flow-tiny@1',
      dir: fl.dir,
      manifest: withProvenance(fl.manifest, { dataset: 'tiny:train', phase: 'pretrain' }),
    };
    expect(baseFlowName(dflt.manifest)).toBe('flow-tiny');
    const installed = new Map([['flow-tiny', flow]]);
    expect(defaultFineTuneBase(dflt, (r) => installed.get(r)).id).toBe('flow-tiny@1');
    // Not installed: today's default.
    expect(defaultFineTuneBase(dflt, () => undefined).id).toBe('prg-tiny@1');
    // A model fine-tuned under the flow's name is no base flow.
    const tuned = { ...flow, manifest: withProvenance(flow.manifest, { phase: 'finetune' }) };
    expect(defaultFineTuneBase(dflt, () => tuned).id).toBe('prg-tiny@1');
    // A default model trained on other data (the fixture's "random"): no flow of its own.
    const other = { ...dflt, manifest: cls.manifest };
    expect(defaultFineTuneBase(other, (r) => installed.get(r)).id).toBe('prg-tiny@1');
    // The default model already a flow: itself.
    expect(defaultFineTuneBase(flow, (r) => installed.get(r)).id).toBe('flow-tiny@1');
  });

  it('names the new model after the upload when the base is a flow, so it never becomes the latest flow', async () => {
    const r0 = await root;
    const m = (await createTinyModel(join(r0, 'n'), { name: 'flow-tiny' })).manifest;
    const flow = withProvenance(m, { phase: 'pretrain' });
    const classifier = { ...withProvenance(m, { phase: 'finetune' }), name: 'prg-tiny' };
    expect(fineTuneOutputName(flow, undefined, 'ds_0123456789ab')).toBe('prg-ds_0123456789ab');
    expect(fineTuneOutputName(classifier, undefined, 'ds_0123456789ab')).toBe('prg-tiny');
    expect(fineTuneOutputName(flow, 'mine', 'ds_0123456789ab')).toBe('mine');
  });
});
