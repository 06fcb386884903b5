/**
 * Test fixtures: tiny PNGs, zips built with yazl (plus byte patches for what yazl refuses to
 * write: unsafe names and lying size headers), IDX files.
 */
import sharp from 'sharp';
import * as yazl from 'yazl';

export async function png(w = 4, h = 4, channels: 1 | 3 = 1, seed = 0): Promise<Buffer> {
  const px = Buffer.alloc(w * h * channels);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37 + seed * 11) & 0xff;
  const img = sharp(px, { raw: { width: w, height: h, channels } });
  return (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
}

export interface ZipSpec {
  name: string;
  data?: Buffer;
  dir?: boolean;
  mode?: number;
  compress?: boolean;
}

export function zip(entries: ZipSpec[]): Promise<Buffer> {
  const z = new yazl.ZipFile();
  for (const e of entries) {
    if (e.dir) z.addEmptyDirectory(e.name);
    else
      z.addBuffer(e.data ?? Buffer.alloc(0), e.name, {
        ...(e.mode !== undefined ? { mode: e.mode } : {}),
        compress: e.compress ?? true,
      });
  }
  z.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    z.outputStream.on('data', (c: Buffer) => chunks.push(c));
    z.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    z.outputStream.on('error', reject);
  });
}

/** Replace every occurrence of an entry name (local header + central directory), same length. */
export function renameEntry(buf: Buffer, from: string, to: string): Buffer {
  if (Buffer.byteLength(from) !== Buffer.byteLength(to)) throw new Error('same length only');
  const out = Buffer.from(buf);
  const a = Buffer.from(from);
  const b = Buffer.from(to);
  let i = out.indexOf(a);
  if (i < 0) throw new Error(`${from} not in zip`);
  while (i >= 0) {
    b.copy(out, i);
    i = out.indexOf(a, i + 1);
  }
  return out;
}

/** Rewrite the declared uncompressed size of every central-directory entry (a lying header). */
export function setDeclaredSizes(buf: Buffer, size: number): Buffer {
  const out = Buffer.from(buf);
  const sig = Buffer.from([0x50, 0x4b, 0x01, 0x02]); // central directory file header
  for (let i = out.indexOf(sig); i >= 0; i = out.indexOf(sig, i + 4))
    out.writeUInt32LE(size, i + 24);
  return out;
}

export function idx(dims: number[], data: Uint8Array | number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

/** An ImageFolder zip: { class: count } of w×h grey PNGs, optionally under a top folder. */
export async function imageFolderZip(
  classes: Record<string, number>,
  opts: { top?: string; w?: number; h?: number } = {},
): Promise<Buffer> {
  const entries: ZipSpec[] = [];
  let seed = 0;
  for (const [cls, n] of Object.entries(classes)) {
    if (n === 0) entries.push({ name: `${opts.top ? opts.top + '/' : ''}${cls}/`, dir: true });
    for (let i = 0; i < n; i++)
      entries.push({
        name: `${opts.top ? opts.top + '/' : ''}${cls}/${i}.png`,
        data: await png(opts.w ?? 4, opts.h ?? 4, 1, seed++),
      });
  }
  return zip(entries);
}

/**
 * A two-class toy set a tiny model learns in an epoch: `perClass` flat 8×8 grey PNGs per class,
 * "dark" (20, 25, …) and "light" (200, 205, …), under the top folder `toy/`. 10 per class suits a
 * fine-tune: its OOD fit holds out a tenth of the set and needs at least 2 images.
 */
export async function brightnessZip(perClass = 10): Promise<Buffer> {
  const flat = (v: number) =>
    sharp(Buffer.alloc(64, v), { raw: { width: 8, height: 8, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
  const entries: ZipSpec[] = [];
  for (let i = 0; i < perClass; i++) {
    entries.push({ name: `toy/dark/${i}.png`, data: await flat(20 + 5 * i) });
    entries.push({ name: `toy/light/${i}.png`, data: await flat(200 + 5 * i) });
  }
  return zip(entries);
}
