/** Importing other projects' flow checkpoints as model directories (docs/import.md). */
export * from './convention';
export * from './mapping';
export * from './model';
export * from './onnx';
export * from './plan';
export * from './sit';
export * from './state-dict';
export * from './torchcfm-unet';
export * from './verify';
