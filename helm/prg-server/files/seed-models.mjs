// Seeds the models volume with the models shipped in the image (the init container of the API and
// worker pods): node seed-models.mjs <shipped dir> <volume dir>
//
// Keyed by model version: a shipped model goes to <volume>/<name>-<version>/ unless some directory
// on the volume (depth 1 or 2, as the server scans it) already holds that name@version. So an image
// upgrade adds its new versions and never overwrites anything, fine-tuned models included, and a
// volume seeded by an older chart is not given a duplicate id. Each copy is made in a hidden
// temporary directory (the server skips names starting with ".") and renamed into place, so a pod
// killed mid-copy leaves no half model; pods seeding at once race on the rename, and the loser
// drops its copy. Plain Node (no shell tools), so it behaves the same on every base image.
import { cp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import process from 'node:process';

const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
// A temporary copy older than this was left by a pod that died while copying.
const STALE_MS = 10 * 60 * 1000;

async function readManifest(dir) {
  try {
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    return typeof m.name === 'string' && typeof m.version === 'string' ? m : null;
  } catch {
    return null;
  }
}

async function subdirs(dir) {
  try {
    return (await readdir(dir, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => path.join(dir, d.name));
  } catch {
    return []; // unreadable (e.g. lost+found): the server skips it too
  }
}

/** Every name@version on the volume, where the server would find it. */
async function presentIds(root) {
  const ids = new Set();
  const visit = async (dir, depth) => {
    const m = await readManifest(dir);
    if (m) ids.add(`${m.name}@${m.version}`);
    else if (depth < 2) for (const d of await subdirs(dir)) await visit(d, depth + 1);
  };
  for (const d of await subdirs(root)) await visit(d, 1);
  return ids;
}

async function removeStaleCopies(root) {
  for (const name of await readdir(root)) {
    if (!name.startsWith('.seed-')) continue;
    const p = path.join(root, name);
    const s = await stat(p).catch(() => null);
    if (s && Date.now() - s.mtimeMs > STALE_MS) await rm(p, { recursive: true, force: true });
  }
}

const print = (line) => process.stdout.write(`${line}\n`);

export async function seedModels(shipped, volume, log = print) {
  await removeStaleCopies(volume);
  const present = await presentIds(volume);
  const result = { seeded: [], kept: [] };
  for (const dir of await subdirs(shipped)) {
    const m = await readManifest(dir);
    if (!m) continue;
    const id = `${m.name}@${m.version}`;
    if (!SAFE.test(m.name) || !SAFE.test(m.version)) throw new Error(`${dir}: unsafe id ${id}`);
    if (present.has(id)) {
      result.kept.push(id);
      log(`seed: ${id} already on the volume`);
      continue;
    }
    const target = path.join(volume, `${m.name}-${m.version}`);
    const tmp = path.join(volume, `.seed-${m.name}-${m.version}-${hostname()}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await cp(dir, tmp, { recursive: true });
    try {
      await rename(tmp, target);
      result.seeded.push(id);
      log(`seed: ${id} -> ${target}`);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      // Another pod renamed its copy first: the model is there, which is all that matters.
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
      result.kept.push(id);
      log(`seed: ${id} seeded by another pod`);
    }
  }
  return result;
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const [shipped, volume] = process.argv.slice(2);
  if (!shipped || !volume) {
    process.stderr.write('usage: node seed-models.mjs <shipped dir> <volume dir>\n');
    process.exit(2);
  }
  seedModels(shipped, volume).catch((e) => {
    process.stderr.write(`seed: ${e.message}\n`);
    process.exit(1);
  });
}
