/**
 * Feature pooling for the released head variant: x_t [N, C, H, W] → AdaptiveAvgPool2d((n, n)) →
 * flatten → [N, C·n·n] (opendilab/PRG `classifyHead.mypool`: 32×32×3 → 16×16 → 768 features).
 */
import { GraphBuilder, Value } from '../../engine/onnx/builder';
import { tensor } from '../../engine/onnx/types';

/**
 * The feature-pooling option as users spell it (API, CLI): "none" (the whole x_t, flattened) or n
 * (average-pool each channel to n×n). Everything that accepts it checks it with these.
 */
export const POOL_NONE = 'none';
export const POOL_SPELLING = /^(none|[1-9]\d*)$/;

/** Why `pool` cannot pool an H×W input (null when it can): n must be an integer in [1, min(H, W)]. */
export function poolProblem(pool: number, input: { height: number; width: number }): string | null {
  const side = Math.min(input.height, input.width);
  return Number.isInteger(pool) && pool >= 1 && pool <= side
    ? null
    : `pool must be "${POOL_NONE}" or an integer in [1, ${side}], got ${pool}`;
}

/**
 * Row i of the [n, size] matrix averages PyTorch's adaptive window
 * [floor(i·size/n), ceil((i+1)·size/n)).
 */
export function adaptivePoolMatrix(size: number, n: number): Float32Array {
  const m = new Float32Array(n * size);
  for (let i = 0; i < n; i++) {
    const start = Math.floor((i * size) / n);
    const end = Math.ceil(((i + 1) * size) / n);
    for (let j = start; j < end; j++) m[i * size + j] = 1 / (end - start);
  }
  return m;
}

/**
 * Adaptive average pooling to n×n, then flatten in [C, n, n] order, as a graph fragment.
 * When n divides H and W this is one AveragePool (kernel = stride = H/n); otherwise the windows
 * overlap or differ in size, and the pooling is done as P_h · x · P_wᵀ with constant matrices.
 */
export function poolFeatures(b: GraphBuilder, x: Value, n: number): Value {
  if (x.rank !== 4) throw new Error(`poolFeatures: expected [N, C, H, W], got [${x.shape}]`);
  const [, c, h, w] = x.shape;
  if (typeof c !== 'number' || typeof h !== 'number' || typeof w !== 'number')
    throw new Error(`poolFeatures: C, H, W must be static, got [${x.shape}]`);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`poolFeatures: pool size must be a positive integer, got ${n}`);
  let y: Value;
  if (n === h && n === w) y = x;
  else if (h % n === 0 && w % n === 0)
    y = b.averagePool(x, [h / n, w / n], { strides: [h / n, w / n] });
  else {
    const ph = b.const(tensor('float32', [n, h], adaptivePoolMatrix(h, n)), 'pool_h');
    const pwT = b.const(
      tensor('float32', [w, n], transpose(adaptivePoolMatrix(w, n), n, w)),
      'pool_wT',
    );
    y = b.matmul(ph, b.matmul(x, pwT));
  }
  return b.reshape(y, [0, c * n * n]);
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = m[i * cols + j];
  return out;
}
