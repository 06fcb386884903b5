/* global require */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS require hook */
/**
 * Test-only require hook: compiles .ts with @swc/core (legacy decorators + metadata, CommonJS), so
 * specs can spawn real worker processes from the TypeScript sources without a build step.
 * Usage: node --require ./swc-register.cjs entry.ts
 */
const fs = require('node:fs');
const Module = require('node:module');
const swc = require('@swc/core');

const options = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
    keepClassNames: true,
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};

Module._extensions['.ts'] = function compile(mod, filename) {
  const src = fs.readFileSync(filename, 'utf8');
  const { code } = swc.transformSync(src, { ...options, filename });
  mod._compile(code, filename);
};
