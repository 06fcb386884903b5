/**
 * VAE-stage benchmark: a full-size SD VAE (diffusers AutoencoderKL, block_out_channels 128-256-
 * 512-512, 83.7 M parameters) with hashed weights (src/prg/import/testing/hashed-weights.ts;
 * generated into BENCH_DIR, not committed) is imported with `importVae` (encoder + decoder) and
 * both graphs are timed with onnxruntime-node at 256×256 (latents 4×32×32): seconds per image
 * of the encoder (what every served request and every uncached fine-tuning image costs) and of the
 * decoder (what each /trajectory frame costs). One JSON object per line; peak RSS from getrusage.
 *
 *   npm run bench:vae
 *
 * Environment: BENCH_DIR (tmp), BENCH_BATCHES (1,4), BENCH_REPS (3 timed after 1 warm-up),
 * PRG_THREADS (cores).
 */
import { promises as fs } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors } from '../src/engine/checkpoints';
import { Graph } from '../src/engine/onnx/types';
import { GraphSession } from '../src/engine/runtime/session';
import { buildVaeDecoder, buildVaeEncoder, importVae } from '../src/prg/import';
import { hashedWeights } from '../src/prg/import/testing/hashed-weights';

const env = (k: string, d: string) => process.env[k] || d;
const DIR = env('BENCH_DIR', join(tmpdir(), 'prg-bench-vae'));
const BATCHES = env('BENCH_BATCHES', '1,4').split(',').map(Number);
const REPS = Number(env('BENCH_REPS', '3'));
const THREADS = Number(env('PRG_THREADS', String(cpus().length)));
const SD_VAE = {
  inChannels: 3,
  latentChannels: 4,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  groups: 32,
  quantConv: true,
  scalingFactor: 0.18215,
  imageSize: [256, 256] as [number, number],
};

const maxRssMB = () => Math.round(process.resourceUsage().maxRSS / 1024);
const emit = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

async function generate(file: string): Promise<number> {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let params = 0;
  for (const built of [
    buildVaeEncoder(SD_VAE, { placeholders: true }),
    buildVaeDecoder(SD_VAE, { placeholders: true }),
  ])
    for (const name of built.paramNames) {
      const dims = (built.graph.initializers.get(name) as { dims: number[] }).dims;
      tensors.set(name, { shape: dims, data: hashedWeights(name, dims) });
      params += dims.reduce((a, b) => a * b, 1);
    }
  await fs.writeFile(file, encodeSafetensors(tensors));
  return params;
}

async function time(
  stage: string,
  g: Graph,
  input: string,
  shape: number[],
  batches: number[],
): Promise<void> {
  const ts = performance.now();
  const s = await GraphSession.create(g, { threads: THREADS });
  const load = (performance.now() - ts) / 1000;
  try {
    for (const n of batches) {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n * size).map((_, i) => Math.sin(i / 97) * 0.8);
      const feeds = { [input]: { dtype: 'float32' as const, dims: [n, ...shape], data } };
      await s.run(feeds); // warm-up
      const times: number[] = [];
      for (let r = 0; r < REPS; r++) {
        const a = performance.now();
        await s.run(feeds);
        times.push((performance.now() - a) / 1000);
      }
      times.sort((a, b) => a - b);
      const med = times[Math.floor(times.length / 2)];
      emit({
        phase: stage,
        engine: 'onnxruntime-node',
        image: '3x256x256',
        batch: n,
        seconds_per_call: +med.toFixed(3),
        seconds_per_image: +(med / n).toFixed(3),
        session_load_seconds: +load.toFixed(2),
        threads: THREADS,
        peak_rss_mb: maxRssMB(),
        loadavg: +loadavg()[0].toFixed(2),
      });
    }
  } finally {
    await s.release();
  }
}

async function main(): Promise<void> {
  await fs.mkdir(DIR, { recursive: true });
  const file = join(DIR, 'sd-vae-hashed.safetensors');
  const params = await generate(file);
  const bytes = (await fs.stat(file)).size;
  const t0 = performance.now();
  const vae = await importVae(file, { imageSize: [256, 256], decoder: true });
  emit({
    phase: 'import',
    params,
    encoder_params: vae.params.encoder,
    decoder_params: vae.params.decoder,
    weights_mb: Math.round(bytes / 2 ** 20),
    seconds: +((performance.now() - t0) / 1000).toFixed(2),
    peak_rss_mb: maxRssMB(),
  });
  await time('encoder', vae.encoder, 'image', [3, 256, 256], BATCHES);
  await time('decoder', vae.decoder as Graph, 'latent', [4, 32, 32], [1]);
  emit({ phase: 'summary', cpus: cpus().length, cpu: cpus()[0]?.model, peak_rss_mb: maxRssMB() });
  await fs.rm(file, { force: true });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
