/**
 * Checks rendered Kubernetes objects against the API's schemas, offline, in two passes:
 * - kubernetes-models' validators (the OpenAPI schemas compiled with ajv): types, required fields,
 *   enums and formats. They accept unknown fields, so
 * - a TypeScript excess-property pass: each object becomes an object literal typed with that kind's
 *   interface from the same package, and the compiler reports every property the API does not
 *   have (a typo such as `readinesProbe` or a field at the wrong level), at any depth.
 */
import * as path from 'node:path';
import ts from 'typescript';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** A rendered object and where it came from (value set, template). */
export interface Rendered {
  label: string;
  object: KubeObject;
}

/** The kubernetes-models module and interface for an apiVersion and kind. */
export function modelOf(apiVersion: string, kind: string): { module: string; type: string } {
  const slash = apiVersion.indexOf('/');
  const module =
    apiVersion === 'monitoring.coreos.com/v1'
      ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`
      : slash < 0
        ? `kubernetes-models/${apiVersion}/${kind}`
        : `kubernetes-models/${apiVersion.slice(0, slash)}/${apiVersion.slice(slash + 1)}/${kind}`;
  return { module, type: `I${kind}` };
}

/** Schema problems of one object (empty when valid), from kubernetes-models' validator. */
export async function schemaErrors(object: KubeObject): Promise<string[]> {
  const { module } = modelOf(object.apiVersion, object.kind);
  let Model: new (data: unknown) => { validate(): void };
  try {
    Model = (await import(module))[object.kind];
  } catch {
    return [`no schema for ${object.apiVersion} ${object.kind} (${module})`];
  }
  try {
    new Model(object).validate();
    return [];
  } catch (e) {
    return [(e as Error).message];
  }
}

/**
 * Unknown fields in any of the objects, one message per field with the object's label. Every
 * object is a file of one program, so the type definitions are read once.
 */
export function unknownFieldErrors(objects: Rendered[], root: string): string[] {
  const files = new Map<string, { label: string; text: string }>();
  objects.forEach(({ label, object }, i) => {
    const { module, type } = modelOf(object.apiVersion, object.kind);
    const text =
      `import type { ${type} } from '${module}';\n` +
      `export const rendered: ${type} = ${JSON.stringify(object, null, 2)};\n`;
    // Virtual files inside the repository, so `kubernetes-models` resolves from its node_modules.
    files.set(path.join(root, 'test', 'helm', '.rendered', `object-${i}.ts`), { label, text });
  });
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    lib: ['lib.es2022.d.ts'],
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (f) => files.has(f) || fileExists.call(host, f);
  host.readFile = (f) => files.get(f)?.text ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, ...rest) => {
    const v = files.get(f);
    return v ? ts.createSourceFile(f, v.text, lang) : getSourceFile.call(host, f, lang, ...rest);
  };
  const program = ts.createProgram([...files.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? files.get(d.file.fileName) : undefined;
    const line =
      d.file && d.start !== undefined
        ? d.file.text.split('\n')[d.file.getLineAndCharacterOfPosition(d.start).line].trim()
        : '';
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    return `${where?.label ?? d.file?.fileName ?? 'compiler'}: ${message}${line ? ` at ${line}` : ''}`;
  });
}
