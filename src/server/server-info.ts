/** What the server calls itself (OpenAPI document, Open Inference Protocol server metadata). */
export const SERVER_NAME = 'prg-server';
/** Kept equal to package.json's version (test/server/v2.e2e.spec.ts checks it). */
export const SERVER_VERSION = '0.1.0';
