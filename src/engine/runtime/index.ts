export * from './device';
export * from './session';
export * from './params';
export * from './optim';
export * from './schedule';
export * from './ema';
export * from './checkpoint';
export * from './gradient-step';
