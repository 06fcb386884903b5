export { vjp, VjpOptions, VjpResult } from './vjp';
export { vjpRules, VjpRule, VjpContext, Grad } from './rules';
export { unbroadcast } from './helpers';
