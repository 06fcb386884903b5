/**
 * `prg import <family>`: another project's flow checkpoint → a model directory.
 *
 *   prg import sit --checkpoint SiT-XL-2-256.pt --config SiT-XL/2 --path linear --classes … --out DIR
 *   prg import torchcfm-unet --checkpoint otcfm_cifar10_weights_step_400000.pt --out DIR
 */
import { ClassLabels, SOLVER_NAMES } from '../prg/manifest';
import {
  CIFAR10_CLASSES,
  ImportModelOptions,
  TORCHCFM_CIFAR10,
  TIME_CONVENTIONS,
  TorchcfmUNetOptions,
  importNet,
  importOnnx,
  planSit,
  planTorchcfmUNet,
  writeImportedModel,
} from '../prg/import';
import { ImportedNet } from '../prg/import/plan';
import {
  OptionSpec,
  UsageError,
  Values,
  choice,
  flag,
  num,
  parse,
  pool,
  required,
  str,
} from './args';

const COMMON_IMPORT: OptionSpec = {
  help: { type: 'boolean', short: 'h' },
  checkpoint: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  'model-version': { type: 'string' },
  classes: { type: 'string' },
  head: { type: 'string' },
  hidden: { type: 'string' },
  pool: { type: 'string' },
  seed: { type: 'string' },
  solver: { type: 'string' },
  steps: { type: 'string' },
  't-star': { type: 'string' },
  verify: { type: 'string' },
  tolerance: { type: 'string' },
  'allow-unmapped': { type: 'boolean' },
  overwrite: { type: 'boolean' },
  json: { type: 'boolean' },
};

const COMMON_HELP = `  --checkpoint FILE (.pt from torch 1.6–2.x, or .safetensors)   --out DIR   --name NAME
  --classes a,b,…  (the fresh head's classes)   --head mlp|pooled (pooled) --hidden N (768)
  --pool none|N (min(16, H))   --solver S (euler) --steps K (3) --t-star T (0.5)
  --verify REF.safetensors (x, t, v in this project's convention) --tolerance X (1e-4)
  --allow-unmapped   --overwrite   --json   --model-version V   --seed N`;

export const IMPORT_HELP: Record<string, string> = {
  import: `prg import sit|torchcfm-unet|onnx [options]   (prg import <family> --help)
  Convert another project's flow checkpoint into a model directory (velocity ONNX in this
  project's convention, v(x, t) = -v_upstream(x, 1 - t), plus a fresh head).`,
  'import sit': `prg import sit --checkpoint FILE --path linear|gvp --classes a,b,… --out DIR [options]
  SiT (github.com/willisma/SiT): S/B/L/XL with patch 2/4/8, read from the key shapes.
  --config SiT-XL/2   checked against the file (also gives the head count)
  --heads N           for non-standard sizes   --label N  label row folded in (default: null class)
  --class-conditional keep the label input y (the server feeds the null class unless a request
                      gives classLabel)   --cfg-scale S  recorded for sampling (features use none)
  --force             import a checkpoint that says it is DiT (a diffusion model)
${COMMON_HELP}`,
  'import torchcfm-unet': `prg import torchcfm-unet --checkpoint FILE --out DIR [options]
  torchcfm UNetModelWrapper; ema_model preferred, "module." stripped. Wrapper arguments (defaults:
  the CIFAR-10 script): --dim 3,32,32 --num-channels 128 --num-res-blocks 2 --channel-mult 1,2,2,2
  --attention-resolutions 16 --num-heads 4 --num-head-channels 64 [--use-scale-shift-norm]
  --interpolant icfm|otcfm (icfm)   --classes (default: the CIFAR-10 classes)
${COMMON_HELP}`,
  'import onnx': `prg import onnx --checkpoint FILE.onnx --input NAME --time NAME --output NAME
    --convention data-at-0|data-at-1 --classes a,b,… --out DIR [options]
  A velocity net exported to ONNX, wrapped into this project's contract (x, t → v, data at t = 0).
  --convention data-at-1   data at t = 1 (SiT, torchcfm): v(x, t) = -v_user(x, s (1 - t))
  --t-scale S (1)          the net is fed S * t, e.g. 1000
  --label-input NAME --num-classes K [--null-class J (K)]   a class-label input (int64/int32 [N])
  --interpolant icfm|otcfm|gvp (icfm)   the path it was trained on (for fine-tuning's flow term)
  Checked by a smoke run; inference-only (head fine-tuning only) when an op has no gradient rule.
${COMMON_HELP}`,
};

const SIT_OPTIONS: OptionSpec = {
  ...COMMON_IMPORT,
  config: { type: 'string' },
  heads: { type: 'string' },
  path: { type: 'string' },
  label: { type: 'string' },
  force: { type: 'boolean' },
  'class-conditional': { type: 'boolean' },
  'cfg-scale': { type: 'string' },
};

const ONNX_OPTIONS: OptionSpec = {
  ...COMMON_IMPORT,
  input: { type: 'string' },
  time: { type: 'string' },
  output: { type: 'string' },
  'label-input': { type: 'string' },
  'num-classes': { type: 'string' },
  'null-class': { type: 'string' },
  convention: { type: 'string' },
  't-scale': { type: 'string' },
  interpolant: { type: 'string' },
};

const UNET_OPTIONS: OptionSpec = {
  ...COMMON_IMPORT,
  dim: { type: 'string' },
  'num-channels': { type: 'string' },
  'num-res-blocks': { type: 'string' },
  'channel-mult': { type: 'string' },
  'attention-resolutions': { type: 'string' },
  'num-heads': { type: 'string' },
  'num-head-channels': { type: 'string' },
  'use-scale-shift-norm': { type: 'boolean' },
  interpolant: { type: 'string' },
};

function intList(v: Values, name: string): number[] | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (!xs.length || xs.some((x) => !Number.isInteger(x) || x <= 0))
    throw new UsageError(`--${name}=${s}: expected comma-separated positive integers`);
  return xs;
}

function classList(v: Values, fallback?: string[]): string[] {
  const s = str(v, 'classes');
  const classes = s === undefined ? fallback : s.split(',').map((c) => c.trim());
  if (!classes) throw new UsageError('--classes is required (the fresh head needs its classes)');
  if (classes.length < 2 || classes.some((c) => !c) || new Set(classes).size !== classes.length)
    throw new UsageError('--classes: at least two distinct, non-empty names');
  return classes;
}

function modelOptions(v: Values, cmd: string, classes: string[], H: number): ImportModelOptions {
  const p = pool(v, 'pool');
  const out = required(v, 'out', cmd);
  const verify = str(v, 'verify');
  return {
    out,
    name: str(v, 'name') ?? out.replace(/\/+$/, '').split('/').pop() ?? 'imported',
    version: str(v, 'model-version'),
    classes,
    head: {
      kind: choice(v, 'head', ['mlp', 'pooled'] as const) ?? 'pooled',
      hidden: num(v, 'hidden', { int: true, min: 1 }) ?? 768,
      featurePool: p === undefined ? Math.min(16, H) : p,
      seed: num(v, 'seed', { int: true, min: 0 }),
    },
    solver: {
      name: choice(v, 'solver', SOLVER_NAMES) ?? 'euler',
      steps: num(v, 'steps', { int: true, min: 1, max: 1000 }) ?? 3,
      tStar: num(v, 't-star', { min: 0, max: 1, exclusiveMin: true }) ?? 0.5,
    },
    verify: verify
      ? { file: verify, tolerance: num(v, 'tolerance', { min: 0 }) ?? 1e-4 }
      : undefined,
    overwrite: flag(v, 'overwrite'),
  };
}

async function finish<C>(v: Values, imp: ImportedNet<C>, o: ImportModelOptions): Promise<number> {
  const res = await writeImportedModel(imp, o);
  const r = imp.report;
  const summary = {
    dir: res.dir,
    id: `${res.manifest.name}@${res.manifest.version}`,
    family: imp.plan.family,
    stateDict: imp.provenance.source.stateDict,
    sha256: imp.provenance.source.sha256,
    params: imp.plan.net.params,
    mapped: r.mapped,
    unmapped: r.unmapped,
    ignored: imp.provenance.ignored,
    upstream: imp.plan.upstream,
    labels: res.manifest.architecture.velocity.labels ?? null,
    untrainableOps: res.manifest.architecture.velocity.untrainableOps ?? [],
    verify: res.verify,
  };
  if (flag(v, 'json')) process.stdout.write(JSON.stringify(summary) + '\n');
  else {
    const lines = [
      `imported ${imp.provenance.source.file} (${imp.provenance.source.format}, ` +
        `${imp.provenance.source.stateDict}): ${r.mapped} tensors, ${imp.plan.net.params} parameters`,
      ...Object.entries(imp.provenance.ignored ?? {}).map(([k, why]) => `  note: ${k}: ${why}`),
      res.verify
        ? `verify ${res.verify.file}: max abs difference ${res.verify.maxAbsDiff.toExponential(3)} ` +
          `over ${res.verify.n} inputs (tolerance ${res.verify.tolerance})`
        : 'not verified (pass --verify REF.safetensors)',
      summary.untrainableOps.length
        ? `inference-only flow: no gradient rule for ${summary.untrainableOps.join(', ')} ` +
          '(only the head can be fine-tuned)'
        : 'trainable: every op has a gradient rule',
      `wrote ${summary.id} → ${res.dir}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  return 0;
}

async function importSit(argv: string[]): Promise<number> {
  const v = parse(argv, SIT_OPTIONS, 'import sit');
  if (flag(v, 'help')) return help('import sit');
  const file = required(v, 'checkpoint', 'import sit');
  const path = choice(v, 'path', ['linear', 'gvp'] as const);
  if (!path)
    throw new UsageError('prg import sit: --path linear|gvp is required (the file does not say)');
  const classes = classList(v);
  const imp = await importNet(
    file,
    ['ema', 'model', 'state_dict'],
    (sd, root) =>
      planSit(sd, root, file, {
        path,
        config: str(v, 'config'),
        heads: num(v, 'heads', { int: true, min: 1 }),
        label: num(v, 'label', { int: true, min: 0 }),
        force: flag(v, 'force'),
        classConditional: flag(v, 'class-conditional'),
        cfgScale: num(v, 'cfg-scale', { min: 0 }),
      }),
    { allowUnmapped: flag(v, 'allow-unmapped') },
  );
  const H = imp.velocity.inputs[0].shape[2] as number;
  return finish(v, imp, modelOptions(v, 'import sit', classes, H));
}

async function importTorchcfmUNet(argv: string[]): Promise<number> {
  const v = parse(argv, UNET_OPTIONS, 'import torchcfm-unet');
  if (flag(v, 'help')) return help('import torchcfm-unet');
  const file = required(v, 'checkpoint', 'import torchcfm-unet');
  const d = TORCHCFM_CIFAR10;
  const dim = intList(v, 'dim') ?? d.dim;
  if (dim.length !== 3 || dim[1] !== dim[2])
    throw new UsageError('--dim: C,H,W with H = W (the wrapper builds square nets)');
  const opts: TorchcfmUNetOptions = {
    dim: dim as [number, number, number],
    numChannels: num(v, 'num-channels', { int: true, min: 1 }) ?? d.numChannels,
    numResBlocks: num(v, 'num-res-blocks', { int: true, min: 1 }) ?? d.numResBlocks,
    channelMult: intList(v, 'channel-mult') ?? d.channelMult,
    attentionResolutions: str(v, 'attention-resolutions') ?? d.attentionResolutions,
    numHeads: num(v, 'num-heads', { int: true, min: 1 }) ?? d.numHeads,
    numHeadChannels: num(v, 'num-head-channels', { int: true, min: -1 }) ?? d.numHeadChannels,
    useScaleShiftNorm: flag(v, 'use-scale-shift-norm'),
    interpolant: choice(v, 'interpolant', ['icfm', 'otcfm'] as const) ?? d.interpolant,
  };
  const cifar = dim[0] === 3 && dim[1] === 32 ? CIFAR10_CLASSES : undefined;
  const classes = classList(v, cifar);
  const imp = await importNet(
    file,
    ['ema_model', 'net_model', 'state_dict'],
    (sd) => planTorchcfmUNet(sd, opts),
    { allowUnmapped: flag(v, 'allow-unmapped') },
  );
  return finish(v, imp, modelOptions(v, 'import torchcfm-unet', classes, dim[1]));
}

async function importOnnxCommand(argv: string[]): Promise<number> {
  const v = parse(argv, ONNX_OPTIONS, 'import onnx');
  if (flag(v, 'help')) return help('import onnx');
  const cmd = 'import onnx';
  const file = required(v, 'checkpoint', cmd);
  const convention = choice(v, 'convention', TIME_CONVENTIONS);
  if (!convention)
    throw new UsageError(
      'prg import onnx: --convention data-at-0|data-at-1 is required (where the data sits in time)',
    );
  const label = str(v, 'label-input');
  const k = num(v, 'num-classes', { int: true, min: 1 });
  let labels: ClassLabels | undefined;
  if (k !== undefined) {
    const nullClass = num(v, 'null-class', { int: true, min: k }) ?? k;
    labels = { classes: k, nullClass };
  } else if (str(v, 'null-class') !== undefined)
    throw new UsageError('--null-class needs --num-classes');
  const imp = await importOnnx(file, {
    contract: {
      input: required(v, 'input', cmd),
      time: required(v, 'time', cmd),
      output: required(v, 'output', cmd),
      ...(label ? { label } : {}),
      convention,
      tScale: num(v, 't-scale', { min: 0, exclusiveMin: true }) ?? 1,
    },
    labels,
    interpolant: choice(v, 'interpolant', ['icfm', 'otcfm', 'gvp'] as const) ?? 'icfm',
  });
  const H = imp.velocity.inputs[0].shape[2] as number;
  return finish(v, imp, modelOptions(v, cmd, classList(v), H));
}

function help(topic: string): number {
  process.stdout.write(IMPORT_HELP[topic] + '\n');
  return 0;
}

export async function importCommand(argv: string[]): Promise<number> {
  const [family, ...rest] = argv;
  switch (family) {
    case 'sit':
      return importSit(rest);
    case 'torchcfm-unet':
      return importTorchcfmUNet(rest);
    case 'onnx':
      return importOnnxCommand(rest);
    case undefined:
    case '--help':
    case '-h':
      return help('import');
    default:
      throw new UsageError(`prg import: unknown family ${family} (use sit, torchcfm-unet, onnx)`);
  }
}
