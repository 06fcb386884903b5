/**
 * Reverse-mode autodiff of ONNX graphs: `vjp` appends the gradient graph (standard ONNX ops);
 * `vjpRules` is the per-op registry (supported ops: docs/ops.md); `fdCheck` compares a gradient
 * graph against central differences in ONNX Runtime.
 */
export { vjp, VjpOptions, VjpResult, gradientPath, opsWithoutRule } from './vjp';
export { vjpRules, VjpRule, VjpContext, Grad } from './rules';
export { unbroadcast } from './helpers';
export { fdCheck, FdOptions, FdResult } from './fd-check';
