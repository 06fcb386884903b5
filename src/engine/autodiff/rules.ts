/**
 * Vector-Jacobian products, one rule per ONNX op (the tinygrad gradient.py / JAX lax layout).
 *
 * A rule sees the forward node's inputs `x`, outputs `y` and output cotangents `g`, and returns
 * one entry per input: a thunk building that input's gradient (standard ONNX ops, appended
 * through the GraphBuilder), or null where there is none (integer inputs, shapes, indices). The
 * driver calls only the thunks whose input lies on a path from `wrt`, so e.g. a Conv whose
 * weights are frozen never builds its weight gradient. Rules read forward values (x, y) and never
 * recompute the forward pass.
 */
import { GraphBuilder, Value } from '../onnx/builder';
import { ConvParams, convParams } from '../onnx/shape';
import {
  Attrs,
  Node,
  Shape,
  attr,
  getFloat,
  getInt,
  getInts,
  getString,
  tensor,
  tensorNumbers,
} from '../onnx/types';
import {
  emit,
  invPerm,
  normAxis,
  range,
  reshapeTo,
  runtimeRatio,
  transposeLast,
  unbroadcast,
  zeros,
} from './helpers';

export interface VjpContext {
  b: GraphBuilder;
  node: Node;
  /** Forward inputs; undefined for omitted optional inputs. */
  x: (Value | undefined)[];
  /** Forward outputs. */
  y: Value[];
  /** Cotangent per output; undefined where no gradient flows into that output (Split). */
  g: (Value | undefined)[];
  /** The forward node that produces a value (undefined for inputs and initializers). */
  producer: (value: string) => Node | undefined;
}

/**
 * A gradient, built only when asked for; null/undefined: the input has none; ABSORBED: its
 * contribution is already part of another input's gradient (a fused pattern, see siluInput),
 * so the driver adds no cotangent for it here.
 */
export type Grad = (() => Value) | null | undefined | typeof ABSORBED;
export const ABSORBED = 'absorbed';
export type VjpRule = (c: VjpContext) => Grad[];

// ---- small accessors --------------------------------------------------------------------------

function inp(c: VjpContext, i: number): Value {
  const v = c.x[i];
  if (!v) throw new Error(`${c.node.op} (${c.node.name}): input ${i} is missing`);
  return v;
}

function cot(c: VjpContext, i = 0): Value {
  const v = c.g[i];
  if (!v) throw new Error(`${c.node.op} (${c.node.name}): no cotangent for output ${i}`);
  return v;
}

/** The values of a constant input (axes, pads, starts...), read at build time. */
function constInput(c: VjpContext, i: number, what: string): number[] | undefined {
  const v = c.x[i];
  if (!v) return undefined;
  const t = c.b.initializers.get(v.name);
  if (!t) throw new Error(`${c.node.op} (${c.node.name}): ${what} must be a constant`);
  return tensorNumbers(t);
}

function staticDim(c: VjpContext, d: Shape[number], what: string): number {
  if (typeof d !== 'number')
    throw new Error(`${c.node.op} (${c.node.name}): ${what} must be static, got ${d}`);
  return d;
}

/** Elementwise unary op: dx = g * f'(x, y). */
const unary =
  (dfdx: (b: GraphBuilder, x: Value, y: Value, g: Value) => Value): VjpRule =>
  (c) => [() => dfdx(c.b, inp(c, 0), c.y[0], cot(c))];

const INT64_MIN = -(2 ** 62);

// ---- Conv and friends -------------------------------------------------------------------------

/*
 * Conv gradients: formulations measured on ORT 1.30, 2 intra-op threads, batch 128, 3×3 pad 1,
 * weights fed as inputs, on the shared 2-core machine (bench/autodiff.ts and scratch variants).
 * Process CPU time per run with thread spinning off, min of 5 (wall time was too noisy under
 * other jobs' load; one quiet wall-time run agreed: dx ConvTranspose 31 ms vs flipped Conv 18 ms
 * vs forward 18 ms at 32→32 @28):
 *
 *   weight gradient, CPU ms              32→32 @28   96→32 @28   128→64 @14   64→64 @14
 *     forward conv (reference)             30          86          44           23
 *     per-tap batched MatMul, shift x      41          171         90           32
 *     per-tap batched MatMul, shift g      92          141         73           48
 *     per-tap Gemm (g as [Cout, N·HW])     70          189         83           32
 *     NHWC im2col + one MatMul / Gemm      117         305         133          62
 *     Conv over the batch axis (wall)      55          165         66           —
 *
 * Kept: flipped-weight Conv for stride-1 input gradients (ConvTranspose otherwise); per-tap
 * batched MatMul shifting the smaller of x and g for ungrouped 2-D weight gradients; Conv over
 * the batch axis for grouped or non-2-D ones.
 */

/** Output paddings that make ConvTranspose(g) come out exactly as large as x. */
function outputPadding(x: Value, g: Value, p: ConvParams): number[] {
  const nd = p.kernel.length;
  return p.kernel.map((k, i) => {
    const h = x.shape[2 + i];
    const ho = g.shape[2 + i];
    if (typeof h !== 'number' || typeof ho !== 'number')
      throw new Error(`Conv gradient: spatial dims must be static, got [${x.shape}]`);
    return (
      h - ((ho - 1) * p.strides[i] + p.dilations[i] * (k - 1) + 1 - p.pads[i] - p.pads[i + nd])
    );
  });
}

/**
 * Input gradient of Conv. Stride 1: a Conv of g with the weights' in/out channels swapped (per
 * group) and taps flipped, padded by d(k−1) − p; ORT folds the weight shuffle when W is constant
 * and runs it as fast as the forward conv. Otherwise ConvTranspose with the same attributes, with
 * output_padding restoring rows the stride skipped ((H + p0 + p1 − d(k−1) − 1) % s ≠ 0).
 */
function convInputGrad(b: GraphBuilder, g: Value, w: Value, x: Value, p: ConvParams): Value {
  const nd = p.kernel.length;
  const outPad = outputPadding(x, g, p);
  const flipPads = [
    ...p.kernel.map((k, i) => p.dilations[i] * (k - 1) - p.pads[i]),
    ...p.kernel.map((k, i) => p.dilations[i] * (k - 1) - p.pads[i + nd] + outPad[i]),
  ];
  if (p.strides.every((s) => s === 1) && flipPads.every((v) => v >= 0)) {
    const [cout, cig] = w.shape as number[];
    const G = p.group;
    let wt: Value;
    if (G === 1) wt = b.transpose(w, [1, 0, ...range(2, 2 + nd)]);
    else {
      const grouped = b.reshape(w, [G, cout / G, cig, ...p.kernel]);
      wt = b.reshape(b.transpose(grouped, [0, 2, 1, ...range(3, 3 + nd)]), [
        G * cig,
        cout / G,
        ...p.kernel,
      ]);
    }
    const axes = range(2, 2 + nd);
    const flipped = b.slice(
      wt,
      axes.map(() => -1),
      axes.map(() => INT64_MIN),
      axes,
      axes.map(() => -1),
    );
    return b.conv(g, flipped, undefined, { pads: flipPads, dilations: p.dilations, group: G });
  }
  return b.convTranspose(g, w, undefined, {
    strides: p.strides,
    pads: p.pads,
    dilations: p.dilations,
    group: p.group,
    outputPadding: outPad.some((o) => o !== 0) ? outPad : undefined,
  });
}

/**
 * Weight gradient of y = Conv(x, W), 2-D, one group: dW[o, c, i, j] = Σ_n Σ_p g[n, o, p] ·
 * xpad[n, c, s·p + d·(i, j)]. Per tap (i, j), one batched MatMul g[n] (Cout × P) · x[n] (P × C)
 * over the positions P that tap pairs up, then a sum over the batch; the k² small results are
 * stacked. x is moved to NHWC once. Each tap needs one shifted copy of either x or g, so the
 * smaller of the two is shifted:
 *  - shift x (default): pad x once, take a strided Slice [N, Ho, Wo, C] per tap;
 *  - shift g (stride 1 and Cout < C, e.g. the 96→32 conv after a skip concat): pad g by d(k−1)
 *    once and Slice an H×W window per tap, aligned with the unpadded x.
 */
function convWeightGradTaps(b: GraphBuilder, x: Value, g: Value, p: ConvParams): Value {
  const [kh, kw] = p.kernel;
  const [cout, ho, wo] = g.shape.slice(1) as number[];
  const [cin, h, w] = x.shape.slice(1) as number[];
  const [ph0, pw0, ph1, pw1] = p.pads;
  const [dh, dw] = p.dilations;
  const [sh, sw] = p.strides;
  const xn = b.transpose(x, [0, 2, 3, 1]);
  const taps: Value[] = [];
  const tap = (gs: Value, xs: Value, positions: number) => {
    const per = b.matmul(b.reshape(gs, [0, cout, positions]), b.reshape(xs, [0, positions, cin]));
    taps.push(b.reduceSum(per, [0], false));
  };
  if (sh === 1 && sw === 1 && cout < cin) {
    const [ah, aw] = [dh * (kh - 1), dw * (kw - 1)];
    const gp = ah || aw ? b.pad(g, [0, 0, ah, aw, 0, 0, ah, aw]) : g;
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++) {
        const [s0, s1] = [ph0 + ah - i * dh, pw0 + aw - j * dw];
        // The window that lines g up with x unshifted is g itself (the centre tap).
        const centre = s0 === ah && s1 === aw && ho === h && wo === w;
        tap(centre ? g : b.slice(gp, [s0, s1], [s0 + h, s1 + w], [2, 3]), xn, h * w);
      }
  } else {
    // Padding NHWC copies whole W·C rows, faster than padding NCHW's short rows.
    const xt = p.pads.some((v) => v !== 0) ? b.pad(xn, [0, ph0, pw0, 0, 0, ph1, pw1, 0]) : xn;
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++) {
        const [si, sj] = [i * dh, j * dw];
        // The tap that reads x unshifted is x itself (the centre tap, or a 1×1 kernel).
        const centre = si === ph0 && sj === pw0 && h === ho && w === wo && sh === 1 && sw === 1;
        const xs = centre
          ? xn
          : b.slice(
              xt,
              [si, sj],
              [si + sh * (ho - 1) + 1, sj + sw * (wo - 1) + 1],
              [1, 2],
              [sh, sw],
            );
        tap(g, xs, ho * wo);
      }
  }
  if (taps.length === 1) return b.reshape(taps[0], [cout, cin, kh, kw]);
  return b.reshape(
    b.concat(
      taps.map((t) => b.unsqueeze(t, [2])),
      2,
    ),
    [cout, cin, kh, kw],
  );
}

/**
 * Weight gradient as a convolution over the batch axis (any rank, any groups): the input is x
 * with N and C swapped ([C, N, H, W]), the "kernel" is g with N and C swapped ([Cout, N, Ho, Wo]),
 * and stride and dilation trade places. Rows the forward pass never read (the stride remainder)
 * are dropped by shrinking the end pad (or cropping x) so the result is exactly k taps wide.
 * Groups: x is laid out as [C/G, G·N, H, W] so that Conv's group=G pairs each group's inputs
 * with its outputs.
 */
function convWeightGradOverBatch(
  b: GraphBuilder,
  x: Value,
  g: Value,
  wShape: Shape,
  p: ConvParams,
): Value {
  const nd = p.kernel.length;
  const G = p.group;
  const cin = x.shape[1];
  if (typeof cin !== 'number') throw new Error(`Conv gradient: channels must be static`);
  const cig = cin / G;
  const pads = [...p.pads];
  const crop: number[] = [];
  p.kernel.forEach((k, i) => {
    const h = x.shape[2 + i] as number;
    const rem = (h + p.pads[i] + p.pads[i + nd] - p.dilations[i] * (k - 1) - 1) % p.strides[i];
    const end = p.pads[i + nd] - rem;
    pads[i + nd] = Math.max(end, 0);
    crop.push(Math.max(-end, 0));
  });
  let xs = x;
  if (crop.some((v) => v > 0)) {
    const axes = range(0, nd).filter((i) => crop[i] > 0);
    xs = b.slice(
      x,
      axes.map(() => 0),
      axes.map((i) => (x.shape[2 + i] as number) - crop[i]),
      axes.map((i) => 2 + i),
    );
  }
  const spatial = xs.shape.slice(2) as number[];
  const swap01 = [1, 0, ...range(2, 2 + nd)];
  let xt: Value;
  if (G === 1) xt = b.transpose(xs, swap01);
  else {
    const grouped = b.reshape(xs, [0, G, cig, ...spatial]);
    xt = b.reshape(b.transpose(grouped, [2, 1, 0, ...range(3, 3 + nd)]), [cig, -1, ...spatial]);
  }
  const gt = b.transpose(g, swap01);
  const dwt = b.conv(xt, gt, undefined, {
    strides: p.dilations,
    dilations: p.strides,
    pads,
    group: G,
  });
  return b.transpose(dwt, swap01);
}

function convWeightGrad(b: GraphBuilder, x: Value, g: Value, wShape: Shape, p: ConvParams): Value {
  const dw =
    p.group === 1 && p.kernel.length === 2
      ? convWeightGradTaps(b, x, g, p)
      : convWeightGradOverBatch(b, x, g, wShape, p);
  if (dw.shape.join() !== wShape.join())
    throw new Error(`Conv weight gradient: got [${dw.shape}], expected [${wShape}]`);
  return dw;
}

/** Sum the cotangent over batch and spatial axes: the bias gradient of Conv/ConvTranspose. */
function biasGrad(b: GraphBuilder, g: Value): Value {
  return b.reduceSum(g, [0, ...range(2, g.rank)], false);
}

function conv(c: VjpContext): Grad[] {
  const [x, w] = [inp(c, 0), inp(c, 1)];
  const p = convParams(c.node.attrs, w.shape);
  const g = cot(c);
  return [
    () => convInputGrad(c.b, g, w, x, p),
    () => convWeightGrad(c.b, x, g, w.shape, p),
    c.x[2] ? () => biasGrad(c.b, g) : null,
  ];
}

/**
 * ConvTranspose is the adjoint of Conv: dx = Conv(g, W) with the same attributes, and dW is the
 * Conv weight gradient with the roles of input (g) and cotangent (x) exchanged.
 */
function convTranspose(c: VjpContext): Grad[] {
  const [x, w] = [inp(c, 0), inp(c, 1)];
  if (getInts(c.node.attrs, 'output_shape'))
    throw new Error(`ConvTranspose (${c.node.name}): output_shape is not supported, give pads`);
  const p = convParams(c.node.attrs, w.shape);
  const g = cot(c);
  const opts = { strides: p.strides, pads: p.pads, dilations: p.dilations, group: p.group };
  return [
    () => c.b.conv(g, w, undefined, opts),
    () => convWeightGrad(c.b, g, x, w.shape, p),
    c.x[2] ? () => biasGrad(c.b, g) : null,
  ];
}

/**
 * AveragePool's adjoint spreads each output's cotangent evenly over its window: a depthwise
 * ConvTranspose with a constant 1/|window| kernel. With pads and count_include_pad=0 the divisor
 * varies near the border, so g is divided by the per-position count first (a build-time constant).
 * Non-overlapping windows that tile the input exactly (2×2 stride 2) use nearest Resize instead.
 */
function averagePool(c: VjpContext): Grad[] {
  const b = c.b;
  const x = inp(c, 0);
  const g = cot(c);
  const a = c.node.attrs;
  const kernel = getInts(a, 'kernel_shape') as number[];
  const nd = kernel.length;
  const strides = getInts(a, 'strides') ?? kernel.map(() => 1);
  const pads = getInts(a, 'pads') ?? Array<number>(2 * nd).fill(0);
  const includePad = getInt(a, 'count_include_pad', 0) === 1;
  const ch = staticDim(c, x.shape[1], 'AveragePool channels');
  const size = x.shape.slice(2).map((d) => staticDim(c, d, 'AveragePool spatial dims'));
  const outSize = g.shape.slice(2) as number[];
  const win = kernel.reduce((s, k) => s * k, 1);
  return [
    () => {
      const tiles = kernel.every((k, i) => k === strides[i] && size[i] === k * outSize[i]);
      if (tiles && pads.every((v) => v === 0))
        return b.mul(b.resizeNearest(g, [1, 1, ...kernel]), 1 / win);
      let gs = g;
      let weight = 1 / win;
      if (!includePad && pads.some((v) => v !== 0)) {
        gs = b.div(g, b.const(poolCounts(kernel, strides, pads, size, outSize), 'pool_counts'));
        weight = 1;
      }
      const w = b.const(tensor('float32', [ch, 1, ...kernel], Array(ch * win).fill(weight)));
      const outputPadding = kernel.map(
        (k, i) => size[i] - ((outSize[i] - 1) * strides[i] + k - pads[i] - pads[i + nd]),
      );
      return b.convTranspose(gs, w, undefined, {
        strides,
        pads,
        group: ch,
        outputPadding: outputPadding.some((o) => o !== 0) ? outputPadding : undefined,
      });
    },
  ];
}

/** Number of non-pad elements under each pooling window, as a [1, 1, ...outSize] tensor. */
function poolCounts(
  kernel: number[],
  strides: number[],
  pads: number[],
  size: number[],
  outSize: number[],
) {
  const nd = kernel.length;
  const per = kernel.map((k, i) =>
    range(0, outSize[i]).map((o) => {
      const lo = o * strides[i] - pads[i];
      return Math.min(lo + k, size[i]) - Math.max(lo, 0);
    }),
  );
  const vals: number[] = [];
  const idx = Array<number>(nd).fill(0);
  const total = outSize.reduce((s, v) => s * v, 1);
  for (let n = 0; n < total; n++) {
    vals.push(per.reduce((s, counts, i) => s * counts[idx[i]], 1));
    for (let i = nd - 1; i >= 0; i--) {
      if (++idx[i] < outSize[i]) break;
      idx[i] = 0;
    }
  }
  return tensor('float32', [1, 1, ...outSize], vals);
}

/** GlobalAveragePool: g / (H·W) broadcast back over the spatial axes (one Mul by a constant). */
function globalAveragePool(c: VjpContext): Grad[] {
  const x = inp(c, 0);
  const spatial = x.shape.slice(2).map((d) => staticDim(c, d, 'GlobalAveragePool spatial dims'));
  const n = spatial.reduce((s, v) => s * v, 1);
  const spread = tensor('float32', [1, 1, ...spatial], Array(n).fill(1 / n));
  return [() => c.b.mul(cot(c), c.b.const(spread, 'gap_spread'))];
}

/**
 * Nearest Resize by integer scales copies each input element into a k₁×k₂ block, so the adjoint
 * sums each block: AveragePool with kernel = stride = k, times k₁k₂. Only coordinate modes whose
 * nearest neighbours form such blocks are accepted (asymmetric+floor, half_pixel+round).
 */
function resize(c: VjpContext): Grad[] {
  const x = inp(c, 0);
  const y = c.y[0];
  const a = c.node.attrs;
  const fail = (why: string) => new Error(`Resize (${c.node.name}): gradient supports ${why}`);
  if (getString(a, 'mode', 'nearest') !== 'nearest') throw fail('mode=nearest only');
  const ctm = getString(a, 'coordinate_transformation_mode', 'half_pixel');
  const nm = getString(a, 'nearest_mode', 'round_prefer_floor');
  const blocky =
    (ctm === 'asymmetric' && nm === 'floor') ||
    ((ctm === 'half_pixel' || ctm === 'pytorch_half_pixel') && nm.startsWith('round'));
  if (!blocky) throw fail(`asymmetric+floor or half_pixel+round, not ${ctm}+${nm}`);
  const scales = x.shape.map((d, i) => {
    const o = y.shape[i];
    if (d === o) return 1;
    if (typeof d !== 'number' || typeof o !== 'number' || o % d) throw fail('integer scales only');
    return o / d;
  });
  if (scales[0] !== 1 || scales[1] !== 1) throw fail('scaling of spatial axes only');
  const k = scales.slice(2);
  const vol = k.reduce((s, v) => s * v, 1);
  return [() => c.b.mul(c.b.averagePool(cot(c), k, { strides: k }), vol), null, null, null];
}

// ---- Slice, Gather, Concat --------------------------------------------------------------------

/**
 * Slice's adjoint scatters g back into zeros of x's shape. Unit steps are one Pad. A step s > 1
 * interleaves s−1 zeros after every element (Unsqueeze, Pad, Reshape), then pads to place the
 * block; negative steps first reverse g along the axis, which makes the step positive.
 */
function sliceGrad(c: VjpContext): Value {
  const b = c.b;
  const x = inp(c, 0);
  const r = x.rank;
  let g = cot(c);
  const starts = constInput(c, 1, 'starts') ?? [];
  // Output lengths come from g's shape, so ends are not needed here.
  const axes = (constInput(c, 3, 'axes') ?? starts.map((_, i) => i)).map((a) => normAxis(a, r));
  const steps = constInput(c, 4, 'steps') ?? starts.map(() => 1);
  const pads = Array<number>(2 * r).fill(0);
  axes.forEach((a, i) => {
    const dim = staticDim(c, x.shape[a], `Slice axis ${a}`);
    const m = staticDim(c, g.shape[a], `Slice output axis ${a}`);
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let st = steps[i];
    let s = starts[i] < 0 ? starts[i] + dim : starts[i];
    s = st > 0 ? clamp(s, 0, dim) : clamp(s, -1, dim - 1);
    if (m === 0) {
      pads[a + r] = dim; // nothing was read: all zeros
      return;
    }
    if (st < 0) {
      // Reverse so indices ascend: first kept index becomes s + (m−1)·st.
      g = b.slice(g, [-1], [INT64_MIN], [a], [-1]);
      s = s + (m - 1) * st;
      st = -st;
    }
    if (st > 1) {
      const shape = [...g.shape];
      const u = b.unsqueeze(g, [a + 1]);
      const padded = b.pad(u, [
        ...range(0, r + 1).map(() => 0),
        ...range(0, r + 1).map((j) => (j === a + 1 ? st - 1 : 0)),
      ]);
      const after = shape.slice(a + 1);
      const sym = after.filter((d) => typeof d !== 'number').length;
      if (sym > 1)
        throw new Error(`Slice (${c.node.name}): too many symbolic dims after axis ${a}`);
      const target = [
        ...shape.slice(0, a).map((d) => (typeof d === 'number' ? d : 0)),
        m * st,
        ...after.map((d) => (typeof d === 'number' ? d : -1)),
      ];
      shape[a] = m * st;
      g = emit(b, 'Reshape', [padded, b.ints(target)], {}, { dtype: g.dtype, shape });
      const keep = Math.min(m * st, dim - s);
      if (keep < m * st) g = b.slice(g, [0], [keep], [a]);
    }
    pads[a] = s;
    pads[a + r] = dim - s - (g.shape[a] as number);
  });
  return pads.some((p) => p !== 0) ? b.pad(g, pads) : g;
}

/**
 * Gather's adjoint adds each cotangent slice into row indices[j] of zeros: ScatterND with
 * reduction='add' (repeated indices accumulate). ScatterND indexes leading axes, so for axis ≠ 0
 * the gathered axis is moved to the front and back.
 */
function gatherGrad(c: VjpContext): Value {
  const b = c.b;
  const x = inp(c, 0);
  const idx0 = inp(c, 1);
  const g = cot(c);
  const axis = normAxis(getInt(c.node.attrs, 'axis', 0), x.rank);
  const dim = staticDim(c, x.shape[axis], 'Gather axis');
  const idx = b.where(b.less(idx0, 0), b.add(idx0, dim), idx0);
  const ri = idx0.rank;
  const scatter = (data: Value, upd: Value) =>
    b.op1('ScatterND', [data, b.unsqueeze(idx, [ri]), upd], { reduction: attr.s('add') });
  if (axis === 0) return scatter(zeros(b, x.shape, x), g);
  const toFront = [...range(axis, axis + ri), ...range(0, axis), ...range(axis + ri, g.rank)];
  const xFront = [axis, ...range(0, axis), ...range(axis + 1, x.rank)];
  const shapeFront = xFront.map((i) => x.shape[i]);
  const z = zeros(
    b,
    shapeFront,
    x.shape.every((d) => typeof d === 'number') ? undefined : b.transpose(x, xFront),
  );
  return b.transpose(scatter(z, b.transpose(g, toFront)), invPerm(xFront));
}

function concat(c: VjpContext): Grad[] {
  const r = c.y[0].rank;
  const axis = normAxis(getInt(c.node.attrs, 'axis', 0), r);
  let offset = 0;
  return c.x.map((xi) => {
    const v = xi as Value;
    const start = offset;
    const len = staticDim(c, v.shape[axis], `Concat input along axis ${axis}`);
    offset += len;
    return () => c.b.slice(cot(c), [start], [start + len], [axis]);
  });
}

function split(c: VjpContext): Grad[] {
  const axis = normAxis(getInt(c.node.attrs, 'axis', 0), inp(c, 0).rank);
  const parts = c.y.map((y, i) => c.g[i] ?? zeros(c.b, y.shape, y));
  return [() => c.b.concat(parts, axis), null];
}

// ---- reductions -------------------------------------------------------------------------------

/** Axes a Reduce* node reduced over (from the attribute or the opset-13 axes input). */
function reducedAxes(c: VjpContext, fromInput: boolean): number[] | 'none' {
  const x = inp(c, 0);
  const axes = fromInput ? constInput(c, 1, 'axes') : getInts(c.node.attrs, 'axes');
  if (!axes || axes.length === 0)
    return getInt(c.node.attrs, 'noop_with_empty_axes', 0) ? 'none' : range(0, x.rank);
  return axes.map((a) => normAxis(a, x.rank)).sort((p, q) => p - q);
}

/**
 * A reduction's cotangent with the reduced axes restored as 1s. It is left unexpanded: the
 * driver accepts a gradient that broadcasts to the input's shape and lets the Add that
 * accumulates it do the broadcast (an Expand only when nothing else is added).
 */
function unreduce(c: VjpContext, axes: number[] | 'none', g0?: Value): Value {
  let g = g0 ?? cot(c);
  if (axes === 'none') return g;
  if (getInt(c.node.attrs, 'keepdims', 1) === 0) g = c.b.unsqueeze(g, axes);
  return g;
}

function reduceMean(c: VjpContext): Grad[] {
  const x = inp(c, 0);
  const axes = reducedAxes(c, false);
  if (axes === 'none') return [() => cot(c)];
  // Scale the small cotangent, then broadcast it back (one full-size op instead of two).
  const dims = axes.map((a) => x.shape[a]);
  const scale = (g: Value) =>
    dims.every((d) => typeof d === 'number')
      ? c.b.mul(g, 1 / dims.reduce((s: number, d) => s * (d as number), 1))
      : c.b.div(g, runtimeRatio(c.b, x, c.y[0]));
  return [() => unreduce(c, axes, scale(cot(c)))];
}

/**
 * Inference-mode BatchNormalization y = scale·(x − mean)·r + bias, r = 1/√(var + ε), per channel
 * (axis 1). With S = Σ g and P = Σ g·x over the batch and spatial axes: dx = g·scale·r,
 * dscale = r·(P − mean·S), dbias = S, dmean = −scale·r·S, dvar = −½·scale·r³·(P − mean·S).
 * One full-size Mul for dx and one for P; everything else is per channel.
 */
function batchNormalization(c: VjpContext): Grad[] {
  const b = c.b;
  const [x, scale, , mean, variance] = [0, 1, 2, 3, 4].map((i) => inp(c, i));
  if (getInt(c.node.attrs, 'training_mode', 0))
    throw new Error(`BatchNormalization (${c.node.name}): only inference mode is supported`);
  const eps = getFloat(c.node.attrs, 'epsilon', 1e-5);
  const outer = [0, ...range(2, x.rank)];
  const chan = (v: Value) => b.reshape(v, [-1, ...range(2, x.rank).map(() => 1)]);
  const r = () => b.div(1, b.sqrt(b.add(variance, eps)));
  const S = () => b.reduceSum(cot(c), outer, false);
  const centred = () => b.sub(b.reduceSum(b.mul(cot(c), x), outer, false), b.mul(mean, S()));
  return [
    () => b.mul(cot(c), chan(b.mul(scale, r()))),
    () => b.mul(r(), centred()),
    S,
    () => b.neg(b.mul(b.mul(scale, r()), S())),
    () => {
      const rr = r();
      return b.mul(b.mul(b.mul(scale, -0.5), b.mul(rr, b.mul(rr, rr))), centred());
    },
  ];
}

/** True when input i is a constant initializer whose every entry equals v. */
function constAll(c: VjpContext, i: number, v: number): boolean {
  const x = c.x[i];
  const t = x && c.b.initializers.get(x.name);
  return !!t && tensorNumbers(t).every((e) => e === v);
}

/**
 * InstanceNormalization y = scale[c]·x̂ + bias[c], x̂ = (x − μ)/σ, σ = √(var + ε), μ and var per
 * (sample, channel) over the spatial axes (mean over L positions). Closed-form backward with
 * ĝ = g·scale: dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)); dscale = Σ g·x̂, dbias = Σ g over the
 * batch and spatial axes.
 *
 * x̂ is the forward output itself when scale is the constant 1 and bias the constant 0 (how
 * builder.groupNorm uses the op); otherwise it is one InstanceNormalization of x with unit
 * scale, the only forward value the op does not expose. σ is not exposed either; it follows
 * from x and x̂: mean(x·x̂) = mean((x − μ)·x̂) = var/σ = (σ² − ε)/σ, so with m = mean(x·x̂),
 * σ = (m + √(m² + 4ε))/2 (the positive root, no cancellation). The μ·mean(x̂) term dropped there
 * is zero up to float32 rounding of x̂ (relative ~1e-7 per value), i.e. negligible unless
 * |μ|/σ is in the thousands.
 */
function instanceNormalization(c: VjpContext): Grad[] {
  const b = c.b;
  const [x, scale] = [inp(c, 0), inp(c, 1)];
  const eps = getFloat(c.node.attrs, 'epsilon', 1e-5);
  const axes = range(2, x.rank);
  const unitScale = constAll(c, 1, 1);
  const plain = unitScale && constAll(c, 2, 0);
  const chan = (v: Value) => b.reshape(v, [-1, ...axes.map(() => 1)]);
  let xhatV: Value | undefined;
  const xhat = (): Value => {
    if (!xhatV) {
      const cN = staticDim(c, scale.shape[0], 'channels');
      const fill = (v: number) => b.const(tensor(x.dtype, [cN], new Array<number>(cN).fill(v)));
      xhatV = plain ? c.y[0] : b.instanceNorm(x, fill(1), fill(0), eps);
    }
    return xhatV;
  };
  const dx = () => {
    const g = cot(c);
    const gs = unitScale ? g : b.mul(g, chan(scale));
    const xh = xhat();
    const m = b.reduceMean(b.mul(x, xh), axes);
    const invSigma = b.div(2, b.add(m, b.sqrt(b.add(b.mul(m, m), 4 * eps))));
    const mg = b.reduceMean(gs, axes);
    const mgx = b.reduceMean(b.mul(gs, xh), axes);
    const inst = x.shape.slice(0, 2);
    if (inst.every((d) => typeof d === 'number')) {
      // gs/σ + (−mgx/σ)·x̂ + (−mg/σ): the second and third terms are one inference-mode
      // BatchNormalization over x̂ viewed as [1, N·C, ...] (per-instance scale and bias, mean 0,
      // var 1 − ε so that √(var + ε) = 1), saving a full-size kernel: 0.97-0.99× CPU time of
      // the UNet-XS training step in three interleaved A/B runs. Needs N·C static.
      const ni = (inst as number[])[0] * (inst as number[])[1];
      const flat = (v: Value) => b.reshape(v, [ni]);
      const coef = b.neg(invSigma);
      const t = b.batchNormInference(
        b.reshape(xh, [1, ni, ...axes.map(() => 0)]),
        flat(b.mul(mgx, coef)),
        flat(b.mul(mg, coef)),
        b.const(tensor(x.dtype, [ni], new Array<number>(ni).fill(0))),
        b.const(tensor(x.dtype, [ni], new Array<number>(ni).fill(1 - eps))),
        eps,
      );
      return b.add(
        b.mul(gs, invSigma),
        b.reshape(t, [...(inst as number[]), ...axes.map(() => 0)]),
      );
    }
    return b.mul(b.sub(b.sub(gs, mg), b.mul(xh, mgx)), invSigma);
  };
  const outer = [0, ...axes];
  return [
    dx,
    () => b.reduceSum(b.mul(cot(c), xhat()), outer, false),
    () => b.reduceSum(cot(c), outer, false),
  ];
}

// ---- linear algebra ---------------------------------------------------------------------------

/**
 * MatMul with numpy semantics: 1-D operands are promoted (K → [1, K] or [K, 1]), batch dims
 * broadcast. dA = g·Bᵀ, dB = Aᵀ·g, each summed over the batch dims its operand was broadcast
 * along. A 2-D B (a weight) under a batched A gets one Gemm over the flattened batch instead.
 */
function matmul(c: VjpContext): Grad[] {
  const b = c.b;
  const [A, B] = [inp(c, 0), inp(c, 1)];
  const prep = () => {
    const a2 = A.rank === 1 ? b.unsqueeze(A, [0]) : A;
    const b2 = B.rank === 1 ? b.unsqueeze(B, [1]) : B;
    let g2 = cot(c);
    if (A.rank === 1 && B.rank === 1) g2 = b.reshape(g2, [1, 1]);
    else if (A.rank === 1) g2 = b.unsqueeze(g2, [g2.rank - 1]);
    else if (B.rank === 1) g2 = b.unsqueeze(g2, [g2.rank]);
    return { a2, b2, g2 };
  };
  return [
    () => {
      const { a2, b2, g2 } = prep();
      if (a2.rank === 2 && b2.rank === 2 && g2.rank === 2) {
        const d = b.gemm(g2, b2, undefined, { transB: true });
        return A.rank === 1 ? b.squeeze(d, [0]) : d;
      }
      const d = unbroadcast(b, b.matmul(g2, transposeLast(b, b2)), a2.shape);
      return A.rank === 1 ? b.squeeze(d, [d.rank - 2]) : d;
    },
    () => {
      const { a2, b2, g2 } = prep();
      let d: Value;
      if (b2.rank === 2) {
        const k = a2.shape[a2.rank - 1];
        const n = g2.shape[g2.rank - 1];
        const af = a2.rank === 2 ? a2 : b.reshape(a2, [-1, staticDim(c, k, 'MatMul K')]);
        const gf = g2.rank === 2 ? g2 : b.reshape(g2, [-1, staticDim(c, n, 'MatMul N')]);
        d = b.gemm(af, gf, undefined, { transA: true });
      } else d = unbroadcast(b, b.matmul(transposeLast(b, a2), g2), b2.shape);
      return B.rank === 1 ? b.squeeze(d, [d.rank - 1]) : d;
    },
  ];
}

/** Gemm: Y = α·A'B' + β·C with A' = transA ? Aᵀ : A (likewise B'), C broadcast to [M, N]. */
function gemm(c: VjpContext): Grad[] {
  const b = c.b;
  const [A, B] = [inp(c, 0), inp(c, 1)];
  const a = c.node.attrs;
  const ta = getInt(a, 'transA', 0) === 1;
  const tb = getInt(a, 'transB', 0) === 1;
  const alpha = getFloat(a, 'alpha', 1);
  const beta = getFloat(a, 'beta', 1);
  const g = () => cot(c);
  return [
    () =>
      ta
        ? b.gemm(B, g(), undefined, { transA: tb, transB: true, alpha })
        : b.gemm(g(), B, undefined, { transB: !tb, alpha }),
    () =>
      tb
        ? b.gemm(g(), A, undefined, { transA: true, transB: ta, alpha })
        : b.gemm(A, g(), undefined, { transA: !ta, alpha }),
    c.x[2]
      ? () => {
          const d = unbroadcast(b, g(), inp(c, 2).shape);
          return beta === 1 ? d : b.mul(d, beta);
        }
      : null,
  ];
}

// ---- the registry -----------------------------------------------------------------------------

const ub = (c: VjpContext, v: Value, i: number) => unbroadcast(c.b, v, inp(c, i).shape);
const passThrough: VjpRule = (c) => [() => cot(c)];

const mul: VjpRule = (c) =>
  c.node.inputs[0] === c.node.inputs[1]
    ? [() => ub(c, c.b.mul(c.b.mul(cot(c), 2), inp(c, 0)), 0), null]
    : [() => ub(c, c.b.mul(cot(c), inp(c, 1)), 0), () => ub(c, c.b.mul(cot(c), inp(c, 0)), 1)];

/**
 * SiLU as builder.silu emits it, Mul(x, Sigmoid(x)) (either order): the index of x, else
 * undefined. The Sigmoid's own rule then only sees cotangents from its other consumers, if any.
 */
function siluInput(c: VjpContext): number | undefined {
  const [a, s] = c.node.inputs;
  if (a === s) return undefined;
  for (const i of [0, 1]) {
    const [xName, sName] = i === 0 ? [a, s] : [s, a];
    const prod = c.producer(sName);
    if (prod?.op === 'Sigmoid' && prod.inputs[0] === xName) return i;
  }
  return undefined;
}

export const vjpRules: Record<string, VjpRule> = {
  Identity: passThrough,
  Constant: () => [],
  Cast: (c) => [inp(c, 0).dtype === 'float32' ? () => cot(c) : null],
  Add: (c) => [() => ub(c, cot(c), 0), () => ub(c, cot(c), 1)],
  // Negate after summing: the Neg then touches b's (often broadcast, small) shape.
  Sub: (c) => [() => ub(c, cot(c), 0), () => c.b.neg(ub(c, cot(c), 1))],
  // Mul(x, x) (variances, squares): one term 2·g·x instead of two.
  Mul: (c) => {
    const i = siluInput(c);
    if (i === undefined) return mul(c);
    // y = x·σ(x): dx = g·(σ + x·σ·(1 − σ)) = g·(σ + y·(1 − σ)), four full-size kernels; the
    // generic Mul + Sigmoid rules take six (g·σ, g·x, 1 − σ, σ·(1 − σ), their product, the Add).
    const s = inp(c, 1 - i);
    const dx = () => c.b.mul(cot(c), c.b.add(s, c.b.mul(c.y[0], c.b.sub(1, s))));
    return i === 0 ? [dx, ABSORBED] : [ABSORBED, dx];
  },
  // y = a/b: da = g/b, db = −g·a/b² = −Σ(g·y)/b (b is constant along the summed axes, so the
  // division and negation happen on b's shape).
  Div: (c) => [
    () => ub(c, c.b.div(cot(c), inp(c, 1)), 0),
    () => c.b.neg(c.b.div(ub(c, c.b.mul(cot(c), c.y[0]), 1), inp(c, 1))),
  ],
  Neg: unary((b, _x, _y, g) => b.neg(g)),
  // y = a^p: da = g·p·a^(p−1), dp = g·y·ln a.
  Pow: (c) => [
    () => {
      const p = inp(c, 1);
      const dy = c.b.mul(p, c.b.pow(inp(c, 0), c.b.sub(p, 1)));
      return ub(c, c.b.mul(cot(c), dy), 0);
    },
    () => ub(c, c.b.mul(c.b.mul(cot(c), c.y[0]), c.b.log(inp(c, 0))), 1),
  ],
  Sqrt: unary((b, _x, y, g) => b.div(b.mul(g, 0.5), y)),
  Reciprocal: unary((b, _x, y, g) => b.neg(b.mul(g, b.mul(y, y)))),
  Exp: unary((b, _x, y, g) => b.mul(g, y)),
  Log: unary((b, x, _y, g) => b.div(g, x)),
  Abs: unary((b, x, _y, g) => b.mul(g, b.sign(x))),
  Tanh: unary((b, _x, y, g) => b.mul(g, b.sub(1, b.mul(y, y)))),
  Sigmoid: unary((b, _x, y, g) => b.mul(g, b.mul(y, b.sub(1, y)))),
  Relu: unary((b, x, _y, g) => b.where(b.greater(x, 0), g, 0)),
  LeakyRelu: (c) => {
    const alpha = getFloat(c.node.attrs, 'alpha', 0.01);
    return [() => c.b.where(c.b.greater(inp(c, 0), 0), cot(c), c.b.mul(cot(c), alpha))];
  },
  Softplus: unary((b, x, _y, g) => b.mul(g, b.sigmoid(x))),
  // erf'(x) = 2/√π · exp(−x²).
  Erf: unary((b, x, _y, g) => b.mul(g, b.mul(b.exp(b.neg(b.mul(x, x))), 2 / Math.sqrt(Math.PI)))),
  Sin: unary((b, x, _y, g) => b.mul(g, b.cos(x))),
  Cos: unary((b, x, _y, g) => b.neg(b.mul(g, b.sin(x)))),
  // Ties send the whole cotangent to the first operand.
  Max: (c) => {
    const ge = () => c.b.op1('GreaterOrEqual', [inp(c, 0), inp(c, 1)]);
    return [() => ub(c, c.b.where(ge(), cot(c), 0), 0), () => ub(c, c.b.where(ge(), 0, cot(c)), 1)];
  },
  Min: (c) => {
    const le = () => c.b.op1('LessOrEqual', [inp(c, 0), inp(c, 1)]);
    return [() => ub(c, c.b.where(le(), cot(c), 0), 0), () => ub(c, c.b.where(le(), 0, cot(c)), 1)];
  },
  Where: (c) => [
    null,
    () => ub(c, c.b.where(inp(c, 0), cot(c), 0), 1),
    () => ub(c, c.b.where(inp(c, 0), 0, cot(c)), 2),
  ],
  MatMul: matmul,
  Gemm: gemm,
  Conv: conv,
  ConvTranspose: convTranspose,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
  Resize: resize,
  Reshape: (c) => [() => reshapeTo(c.b, cot(c), inp(c, 0).shape, inp(c, 0)), null],
  Flatten: (c) => [() => reshapeTo(c.b, cot(c), inp(c, 0).shape, inp(c, 0))],
  Transpose: (c) => {
    const perm = getInts(c.node.attrs, 'perm') ?? range(0, c.y[0].rank).reverse();
    return [() => c.b.transpose(cot(c), invPerm(perm))];
  },
  Concat: concat,
  Split: split,
  Slice: (c) => [() => sliceGrad(c), null, null, null, null],
  Squeeze: (c) => {
    const x = inp(c, 0);
    const axes = constInput(c, 1, 'axes')?.map((a) => normAxis(a, x.rank));
    const ax = axes ?? range(0, x.rank).filter((i) => x.shape[i] === 1);
    return [
      () =>
        c.b.unsqueeze(
          cot(c),
          ax.sort((p, q) => p - q),
        ),
      null,
    ];
  },
  Unsqueeze: (c) => {
    const r = c.y[0].rank;
    const axes = (constInput(c, 1, 'axes') ?? []).map((a) => normAxis(a, r));
    return [() => c.b.squeeze(cot(c), axes), null];
  },
  Expand: (c) => [() => ub(c, cot(c), 0), null],
  Pad: (c) => {
    const x = inp(c, 0);
    if (getString(c.node.attrs, 'mode', 'constant') !== 'constant')
      throw new Error(`Pad (${c.node.name}): gradient supports mode=constant only`);
    if (c.x[3]) throw new Error(`Pad (${c.node.name}): gradient does not support the axes input`);
    const pads = constInput(c, 1, 'pads') ?? [];
    const r = x.rank;
    if (pads.some((p) => p < 0)) throw new Error(`Pad (${c.node.name}): negative pads`);
    const axes = range(0, r).filter((i) => pads[i] || pads[i + r]);
    const ends = axes.map((i) => pads[i] + staticDim(c, x.shape[i], `Pad axis ${i}`));
    return [
      () =>
        c.b.slice(
          cot(c),
          axes.map((i) => pads[i]),
          ends,
          axes,
        ),
      null,
      null,
      null,
    ];
  },
  ReduceSum: (c) => [() => unreduce(c, reducedAxes(c, true)), null],
  ReduceMean: reduceMean,
  // dx = y ⊙ (g − Σ_axis g⊙y).
  BatchNormalization: batchNormalization,
  InstanceNormalization: instanceNormalization,
  Softmax: (c) => {
    const y = c.y[0];
    const axis = getInt(c.node.attrs, 'axis', -1);
    return [() => c.b.mul(y, c.b.sub(cot(c), c.b.reduceSum(c.b.mul(cot(c), y), [axis])))];
  },
  // dx = g − softmax(x) ⊙ Σ_axis g, with softmax(x) = exp(y).
  LogSoftmax: (c) => {
    const y = c.y[0];
    const axis = getInt(c.node.attrs, 'axis', -1);
    return [() => c.b.sub(cot(c), c.b.mul(c.b.exp(y), c.b.reduceSum(cot(c), [axis])))];
  },
  Gather: (c) => [() => gatherGrad(c), null],
  GatherElements: (c) => {
    const x = inp(c, 0);
    const axis = normAxis(getInt(c.node.attrs, 'axis', 0), x.rank);
    return [
      () => {
        const b = c.b;
        const idx0 = inp(c, 1);
        const dim = staticDim(c, x.shape[axis], 'GatherElements axis');
        const idx = b.where(b.less(idx0, 0), b.add(idx0, dim), idx0);
        const attrs: Attrs = { axis: attr.i(axis), reduction: attr.s('add') };
        return b.op1('ScatterElements', [zeros(b, x.shape, x), idx, cot(c)], attrs);
      },
      null,
    ];
  },
};

/**
 * A rule's gradient must have the forward input's shape, or broadcast to it with the same rank
 * (reductions leave their cotangent unexpanded; the driver expands after accumulating).
 */
export function checkGradShape(node: Node, i: number, want: Shape, got: Value): void {
  const ok =
    want.length === got.shape.length &&
    want.every((d, k) => {
      const e = got.shape[k];
      return d === e || e === 1 || typeof d !== 'number' || typeof e !== 'number';
    });
  if (!ok)
    throw new Error(
      `${node.op} (${node.name}): gradient for input ${i} has shape [${got.shape}], expected [${want}]`,
    );
}
