import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../onnx/builder';
import { tensor } from '../onnx/types';
import { SessionCache } from './session';

function affine(scale: number) {
  const b = new GraphBuilder('affine');
  const x = b.input('x', ['N', 2]);
  b.output(b.mul(x, b.param('s', tensor('float32', [2], [scale, scale]))), 'y');
  return b.build();
}

describe('SessionCache', () => {
  it('shares one session per graph content and options, releases on the last lease', async () => {
    const cache = new SessionCache();
    const [a, b] = await Promise.all([
      cache.acquire(affine(2), { threads: 1 }),
      cache.acquire(affine(2), { threads: 1 }),
    ]);
    expect(a.session).toBe(b.session);
    expect(cache.size).toBe(1);
    expect(cache.refs(a.key)).toBe(2);

    const c = await cache.acquire(affine(3), { threads: 1 }); // other weights: other content
    const d = await cache.acquire(affine(2), { threads: 2 }); // other options
    expect(new Set([a.key, c.key, d.key]).size).toBe(3);
    expect(cache.size).toBe(3);

    await a.release();
    await a.release(); // idempotent: must not drop b's reference
    expect(cache.refs(b.key)).toBe(1);
    const y = await b.session.run({ x: tensor('float32', [1, 2], [1, -1]) });
    expect(Array.from(y.y.data as Float32Array)).toEqual([2, -2]);
    await b.release();
    expect(cache.refs(b.key)).toBe(0);
    expect(b.session.isReleased).toBe(true);
    await expect(b.session.run({ x: tensor('float32', [1, 2], [1, 1]) })).rejects.toThrow(
      /released/,
    );
    await cache.clear();
    expect(cache.size).toBe(0);
    expect(c.session.isReleased && d.session.isReleased).toBe(true);
  });

  it('names missing inputs and wrong dtypes or dims', async () => {
    const cache = new SessionCache();
    const l = await cache.acquire(affine(1), { threads: 1 });
    await expect(l.session.run({})).rejects.toThrow(/missing inputs x/);
    await expect(l.session.run({ x: tensor('float32', [1, 3], [1, 2, 3]) })).rejects.toThrow(
      /input x is float32\[1,3\], the graph wants float32\[N,2\]/,
    );
    await expect(l.session.run({ x: tensor('int64', [1, 2], [1, 2]) })).rejects.toThrow(
      /input x is int64/,
    );
    await l.release();
  });
});
