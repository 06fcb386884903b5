/**
 * The Open Inference Protocol (KServe v2 REST) end to end, through a client written from the
 * protocol's specification alone (kserve/open-inference-protocol specification/protocol/
 * inference_rest.md, and Triton's docs/protocol/extension_binary_data.md for binary tensors):
 * it imports nothing from the server. Every v2 route, JSON and binary tensors, and the bad
 * requests (wrong datatypes, shapes, unknown inputs, outputs, models and versions).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTinyModel } from '../../src/prg/testing/tiny-model';
import { HealthService } from '../../src/server/health/health.service';
import { SERVER_VERSION } from '../../src/server/server-info';
import { createTestApp, TestApp, testPng } from '../../src/server/testing/test-app';

// ---- the client: types and calls as the specification gives them --------------------------------

type Datatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';
type Parameters = Record<string, string | number | boolean>;
type TensorData = (number | string | boolean | TensorData)[];

interface MetadataTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
}
interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}
interface ModelMetadata {
  name: string;
  versions?: string[];
  platform: string;
  inputs: MetadataTensor[];
  outputs: MetadataTensor[];
}
interface RequestInput {
  name: string;
  shape: number[];
  datatype: Datatype | string;
  parameters?: Parameters;
  data?: TensorData;
}
interface RequestOutput {
  name: string;
  parameters?: Parameters;
}
interface InferRequest {
  id?: string;
  parameters?: Parameters;
  inputs: RequestInput[];
  outputs?: RequestOutput[];
}
interface ResponseOutput {
  name: string;
  shape: number[];
  datatype: Datatype;
  parameters?: Parameters;
  data?: TensorData;
}
interface InferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Parameters;
  outputs: ResponseOutput[];
}
interface ErrorBody {
  error: string;
}

interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** A decoded output: numbers (FP32), booleans (BOOL), from JSON or binary data. */
interface Tensor {
  shape: number[];
  datatype: Datatype;
  parameters?: Parameters;
  values: (number | boolean)[];
}

class OpenInferenceClient {
  constructor(
    private readonly base: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  private async call(
    method: string,
    p: string,
    body?: Buffer | string,
    h: Record<string, string> = {},
  ): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
    const res = await fetch(`${this.base}/${p}`, {
      method,
      headers: { ...this.headers, ...h },
      body,
    });
    return {
      status: res.status,
      headers: res.headers,
      bytes: Buffer.from(await res.arrayBuffer()),
    };
  }

  private async json<T>(method: string, p: string, body?: string): Promise<Answer<T>> {
    const r = await this.call(
      method,
      p,
      body,
      body === undefined ? {} : { 'Content-Type': 'application/json' },
    );
    return { status: r.status, headers: r.headers, body: JSON.parse(r.bytes.toString('utf8')) };
  }

  private static model(name: string, version?: string) {
    return `v2/models/${encodeURIComponent(name)}${version ? `/versions/${encodeURIComponent(version)}` : ''}`;
  }

  serverMetadata() {
    return this.json<ServerMetadata | ErrorBody>('GET', 'v2');
  }
  serverLive() {
    return this.json<{ live: boolean }>('GET', 'v2/health/live');
  }
  serverReady() {
    return this.json<{ ready: boolean }>('GET', 'v2/health/ready');
  }
  modelReady(name: string, version?: string) {
    return this.json<{ name: string; ready: boolean } | ErrorBody>(
      'GET',
      `${OpenInferenceClient.model(name, version)}/ready`,
    );
  }
  modelMetadata(name: string, version?: string) {
    return this.json<ModelMetadata | ErrorBody>('GET', OpenInferenceClient.model(name, version));
  }
  /** A JSON inference request (or any raw text, to send malformed bodies). */
  infer(name: string, req: InferRequest | string, version?: string) {
    return this.json<InferResponse | ErrorBody>(
      'POST',
      `${OpenInferenceClient.model(name, version)}/infer`,
      typeof req === 'string' ? req : JSON.stringify(req),
    );
  }

  /**
   * The binary tensor extension: the JSON object, then each input's bytes in order (their sizes
   * in `binary_data_size`), Inference-Header-Content-Length giving the JSON's length. No
   * Content-Type, as the Triton Python client sends it.
   */
  async inferBinary(
    name: string,
    req: InferRequest,
    blobs: Buffer[],
    headerLength?: string,
  ): Promise<Answer<InferResponse | ErrorBody> & { tensors: Map<string, Tensor> }> {
    const head = Buffer.from(JSON.stringify(req));
    const r = await this.call(
      'POST',
      `${OpenInferenceClient.model(name)}/infer`,
      Buffer.concat([head, ...blobs]),
      { 'Inference-Header-Content-Length': headerLength ?? String(head.length) },
    );
    const h = r.headers.get('Inference-Header-Content-Length');
    const jsonEnd = h === null ? r.bytes.length : Number(h);
    const body = JSON.parse(r.bytes.subarray(0, jsonEnd).toString('utf8')) as
      InferResponse | ErrorBody;
    const tensors = new Map<string, Tensor>();
    if ('outputs' in body) {
      let o = jsonEnd;
      for (const out of body.outputs) {
        const size = out.parameters?.binary_data_size;
        if (typeof size !== 'number') {
          tensors.set(out.name, { ...out, values: flat(out.data!) });
          continue;
        }
        const b = r.bytes.subarray(o, o + size);
        o += size;
        const values =
          out.datatype === 'FP32'
            ? Array.from({ length: size / 4 }, (_, i) => b.readFloatLE(i * 4))
            : Array.from(b, (x) => x === 1);
        tensors.set(out.name, { ...out, values });
      }
      expect(o).toBe(r.bytes.length);
    }
    return { status: r.status, headers: r.headers, body, tensors };
  }
}

const flat = (d: TensorData): (number | boolean)[] =>
  d.flatMap((x) => (Array.isArray(x) ? flat(x) : [x as number | boolean]));

/** BYTES elements as binary data: a 4-byte little-endian length, then the bytes. */
function bytesElements(items: Buffer[]): Buffer {
  return Buffer.concat(
    items.flatMap((b) => {
      const n = Buffer.alloc(4);
      n.writeUInt32LE(b.length);
      return [n, b];
    }),
  );
}

function fp32Bytes(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

// ---- the server under test ------------------------------------------------------------------------

const MSP_FLAGS_ALL = {
  primary: 'msp',
  scores: { msp: { threshold: 2, tpr: 0.95, higherIsInDistribution: true } },
};

let t: TestApp;
let client: OpenInferenceClient;
let base: string;
let png: Buffer;
/** The same image as CHW uint8 pixels (1×8×8) and as the model's input (x = p / 127.5 − 1). */
let pixels: number[];
let image: number[];

beforeAll(async () => {
  t = await createTestApp(
    [
      { name: 'tiny', version: '0.0.1', classes: ['zero', 'one', 'two'], seed: 1 },
      { name: 'tiny', version: '0.0.2', classes: ['zero', 'one', 'two'], seed: 3 },
      { name: 'rgb', version: '1.0.0', classes: 4, inputShape: [3, 8, 8], seed: 2 },
      // OOD-calibrated: msp ∈ [1/3, 1] for 3 classes, so threshold 2 flags everything.
      { name: 'oodm', version: '1', classes: 3, seed: 4, ood: MSP_FLAGS_ALL },
    ],
    { maxImages: 4, maxSteps: 20, maxUploadBytes: 200_000, defaultModel: 'tiny' },
  );
  await t.app.listen(0, '127.0.0.1');
  const { port } = t.app.getHttpServer().address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  client = new OpenInferenceClient(base);
  png = await testPng(8, 8, 1, 5);
  pixels = Array.from(await sharp(png).extractChannel(0).raw().toBuffer());
  image = pixels.map((p) => p / 127.5 - 1);
});

afterAll(async () => {
  await t?.close();
});

const softmax = (z: number[]) => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

const output = (r: InferResponse, name: string) => {
  const o = r.outputs.find((x) => x.name === name);
  expect(o, `output ${name}`).toBeDefined();
  return o!;
};

const expectError = (
  r: { status: number; body: unknown },
  status: number,
  code: string,
  text?: RegExp,
) => {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  const b = r.body as { error?: unknown; code?: unknown };
  expect(typeof b.error).toBe('string');
  expect(b.code).toBe(code);
  if (text) expect(b.error).toMatch(text);
  // The protocol's error object, not the server's own {statusCode, code, message}.
  expect(Object.keys(b).sort()).toEqual(['code', 'error']);
};

const imageInput = (data: TensorData = image, shape = [1, 1, 8, 8]): RequestInput => ({
  name: 'image',
  datatype: 'FP32',
  shape,
  data,
});

// ---- health and metadata --------------------------------------------------------------------------

describe('health and server metadata', () => {
  it('GET /v2: name, the package version and the binary tensor extension', async () => {
    const r = await client.serverMetadata();
    expect(r.status).toBe(200);
    const pkg = JSON.parse(await readFile(path.join(__dirname, '../../package.json'), 'utf8'));
    expect(SERVER_VERSION).toBe(pkg.version);
    expect(r.body).toEqual({
      name: 'prg-server',
      version: pkg.version,
      extensions: ['binary_tensor_data'],
    });
  });

  it('the v2 routes and schemas are in the OpenAPI document', async () => {
    const doc = (await request(t.app.getHttpServer()).get('/docs-json').expect(200)).body as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v2',
        '/v2/health/ready',
        '/v2/models/{name}',
        '/v2/models/{name}/versions/{version}/ready',
        '/v2/models/{name}/infer',
        '/v2/models/{name}/versions/{version}/infer',
      ]),
    );
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['V2InferRequest', 'V2InferResponse', 'V2ErrorResponse']),
    );
  });

  it('live and ready: 200 with {live: true} / {ready: true}', async () => {
    const live = await client.serverLive();
    expect([live.status, live.body]).toEqual([200, { live: true }]);
    const ready = await client.serverReady();
    expect([ready.status, ready.body]).toEqual([200, { ready: true }]);
  });
});

describe('model metadata and readiness', () => {
  it('declares the inputs and outputs as named, typed tensors with -1 batch', async () => {
    const r = await client.modelMetadata('tiny');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      name: 'tiny',
      versions: ['0.0.1', '0.0.2'],
      platform: 'prg_onnx',
      inputs: [
        { name: 'image', datatype: 'FP32', shape: [-1, 1, 8, 8] },
        { name: 'pixels', datatype: 'UINT8', shape: [-1, 1, 8, 8] },
        { name: 'image_bytes', datatype: 'BYTES', shape: [-1] },
      ],
      outputs: [
        { name: 'logits', datatype: 'FP32', shape: [-1, 3] },
        { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
        { name: 'features', datatype: 'FP32', shape: [-1, 1, 8, 8] },
      ],
    });
    const rgb = (await client.modelMetadata('rgb', '1.0.0')).body as ModelMetadata;
    expect(rgb.inputs[0].shape).toEqual([-1, 3, 8, 8]);
    expect(rgb.outputs[0].shape).toEqual([-1, 4]);
  });

  it('a model with a calibrated OOD score also has ood_score and ood_flag', async () => {
    const r = (await client.modelMetadata('oodm', '1')).body as ModelMetadata;
    expect(r.outputs.slice(3)).toEqual([
      { name: 'ood_score', datatype: 'FP32', shape: [-1] },
      { name: 'ood_flag', datatype: 'BOOL', shape: [-1] },
    ]);
  });

  it('model ready, by name and by version', async () => {
    for (const r of [await client.modelReady('tiny'), await client.modelReady('tiny', '0.0.1')])
      expect([r.status, r.body]).toEqual([200, { name: 'tiny', ready: true }]);
  });

  it('unknown models and versions: 404 with the protocol error object', async () => {
    expectError(await client.modelMetadata('nope'), 404, 'MODEL_NOT_FOUND', /unknown model "nope"/);
    expectError(await client.modelMetadata('tiny', '9.9.9'), 404, 'MODEL_NOT_FOUND', /tiny@9.9.9/);
    expectError(await client.modelReady('nope'), 404, 'MODEL_NOT_FOUND');
    expectError(await client.modelReady('tiny', '9'), 404, 'MODEL_NOT_FOUND');
    // "name@version" is this server's id syntax, not a protocol model name.
    expectError(await client.modelMetadata('tiny@0.0.1'), 404, 'MODEL_NOT_FOUND', /versions/);
    expectError(await client.infer('nope', { inputs: [imageInput()] }), 404, 'MODEL_NOT_FOUND');
    expectError(
      await client.infer('tiny', { inputs: [imageInput()] }, '7'),
      404,
      'MODEL_NOT_FOUND',
    );
  });

  it('unknown routes under /v2 answer in the protocol shape too', async () => {
    const r = await fetch(`${base}/v2/models/tiny/config`);
    expectError({ status: r.status, body: await r.json() }, 404, 'NOT_FOUND');
  });
});

// ---- inference ----------------------------------------------------------------------------------

describe('infer', () => {
  it('FP32 image → every output by default, id echoed, probabilities = softmax(logits)', async () => {
    const r = await client.infer('tiny', { id: 'req-1', inputs: [imageInput()] });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const b = r.body as InferResponse;
    expect(b).toMatchObject({ model_name: 'tiny', model_version: '0.0.2', id: 'req-1' });
    expect(b.outputs.map((o) => o.name)).toEqual(['logits', 'probabilities', 'features']);
    const logits = output(b, 'logits');
    expect(logits).toMatchObject({ datatype: 'FP32', shape: [1, 3] });
    const p = output(b, 'probabilities').data as number[];
    softmax(logits.data as number[]).forEach((v, i) => expect(p[i]).toBeCloseTo(v, 5));
    const f = output(b, 'features');
    expect(f).toMatchObject({ datatype: 'FP32', shape: [1, 1, 8, 8] });
    expect(f.data).toHaveLength(64);
    expect(f.parameters?.t).toBeCloseTo(0.5, 6); // the fixture's t*
  });

  it('runs through the batcher of the ML boundary (its metrics count infer runs)', async () => {
    const before = await request(t.app.getHttpServer()).get('/metrics').expect(200);
    const count = (text: string) =>
      Number(
        /prg_inference_batch_size_count\{model="tiny@0.0.2",op="infer"\} (\d+)/.exec(text)?.[1] ??
          0,
      );
    await Promise.all(
      [1, 2, 3].map(() =>
        client.infer('tiny', { inputs: [imageInput()], outputs: [{ name: 'logits' }] }),
      ),
    );
    const after = await request(t.app.getHttpServer()).get('/metrics').expect(200);
    const runs = count(after.text) - count(before.text);
    // Three single-image requests: one to three runs, as the batcher coalesced them.
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThanOrEqual(3);
  });

  it('agrees with the REST API: image_bytes (base64) = /classify, features = /features', async () => {
    const b64 = png.toString('base64');
    const v2 = (
      await client.infer(
        'tiny',
        {
          inputs: [{ name: 'image_bytes', datatype: 'BYTES', shape: [1], data: [b64] }],
          parameters: { t: 0.75, steps: 2 },
        },
        '0.0.1',
      )
    ).body as InferResponse;
    const rest = await request(t.app.getHttpServer())
      .post('/classify')
      .send({ model: 'tiny@0.0.1', images: [b64], topK: 3, steps: 2 })
      .expect(200);
    const p = output(v2, 'probabilities').data as number[];
    for (const k of rest.body.results[0].topK)
      expect(p[['zero', 'one', 'two'].indexOf(k.label)]).toBeCloseTo(k.probability, 5);
    const feats = await request(t.app.getHttpServer())
      .post('/models/tiny@0.0.1/features')
      .send({ images: [b64], t: 0.75, steps: 2 })
      .expect(200);
    const f = output(v2, 'features');
    expect(f.parameters?.t).toBe(0.75);
    (f.data as number[]).forEach((v, i) => expect(v).toBeCloseTo(feats.body.vectors[0][i], 5));
  });

  it('pixels (UINT8), image (FP32) and image_bytes give the same answer for the same picture', async () => {
    const ask = async (inp: RequestInput) =>
      output(
        (await client.infer('tiny', { inputs: [inp], outputs: [{ name: 'logits' }] }))
          .body as InferResponse,
        'logits',
      ).data as number[];
    const a = await ask({ name: 'pixels', datatype: 'UINT8', shape: [1, 1, 8, 8], data: pixels });
    const b = await ask(imageInput());
    const c = await ask({
      name: 'image_bytes',
      datatype: 'BYTES',
      shape: [1],
      data: [png.toString('base64')],
    });
    b.forEach((v, i) => expect(v).toBeCloseTo(a[i], 5));
    c.forEach((v, i) => expect(v).toBeCloseTo(a[i], 5));
  });

  it('nested data = flattened data; a batch of two answers row by row in order', async () => {
    const other = image.map((v) => -v);
    const nest = (x: number[]) => [[0, 1, 2, 3, 4, 5, 6, 7].map((r) => x.slice(r * 8, r * 8 + 8))];
    const flat = (
      await client.infer('tiny', {
        inputs: [imageInput([...image, ...other], [2, 1, 8, 8])],
        outputs: [{ name: 'probabilities' }],
      })
    ).body as InferResponse;
    const nested = (
      await client.infer('tiny', {
        inputs: [imageInput([nest(image), nest(other)], [2, 1, 8, 8])],
        outputs: [{ name: 'probabilities' }],
      })
    ).body as InferResponse;
    expect(output(flat, 'probabilities').shape).toEqual([2, 3]);
    expect(output(nested, 'probabilities').data).toEqual(output(flat, 'probabilities').data);
    const one = (
      await client.infer('tiny', {
        inputs: [imageInput(other)],
        outputs: [{ name: 'probabilities' }],
      })
    ).body as InferResponse;
    const row2 = (output(flat, 'probabilities').data as number[]).slice(3);
    (output(one, 'probabilities').data as number[]).forEach((v, i) =>
      expect(row2[i]).toBeCloseTo(v, 5),
    );
  });

  it('outputs are selectable by name, in the order asked; no id when none was sent', async () => {
    const r = (
      await client.infer('tiny', {
        inputs: [imageInput()],
        outputs: [{ name: 'features' }, { name: 'logits' }],
        parameters: { t: 1, solver: 'midpoint', steps: 3 },
      })
    ).body as InferResponse;
    expect(r.outputs.map((o) => o.name)).toEqual(['features', 'logits']);
    expect(r.id).toBeUndefined();
    expect(output(r, 'features').parameters).toEqual({ t: 1 });
  });

  it('ood_score and ood_flag: the primary score (msp = max probability) and its flag', async () => {
    const r = (
      await client.infer(
        'oodm',
        {
          inputs: [imageInput([...image, ...image.map((v) => v / 2)], [2, 1, 8, 8])],
          outputs: [{ name: 'ood_score' }, { name: 'ood_flag' }, { name: 'probabilities' }],
        },
        '1',
      )
    ).body as InferResponse;
    const p = output(r, 'probabilities').data as number[];
    const s = output(r, 'ood_score');
    expect(s).toMatchObject({ datatype: 'FP32', shape: [2], parameters: { score: 'msp' } });
    expect((s.data as number[])[0]).toBeCloseTo(Math.max(...p.slice(0, 3)), 5);
    expect((s.data as number[])[1]).toBeCloseTo(Math.max(...p.slice(3)), 5);
    expect(output(r, 'ood_flag')).toMatchObject({
      datatype: 'BOOL',
      shape: [2],
      data: [true, true],
    });
  });

  it('binary tensor extension: FP32 input as bytes, every output as bytes = the JSON answer', async () => {
    const json = (await client.infer('tiny', { inputs: [imageInput()], parameters: { t: 0.5 } }))
      .body as InferResponse;
    const r = await client.inferBinary(
      'tiny',
      {
        id: 'bin',
        inputs: [
          {
            name: 'image',
            datatype: 'FP32',
            shape: [1, 1, 8, 8],
            parameters: { binary_data_size: 256 },
          },
        ],
        parameters: { binary_data_output: true, t: 0.5 },
      },
      [fp32Bytes(image)],
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/application\/octet-stream/);
    const b = r.body as InferResponse;
    expect(b.id).toBe('bin');
    for (const o of b.outputs) expect(o.data).toBeUndefined();
    for (const name of ['logits', 'probabilities', 'features']) {
      const got = r.tensors.get(name)!;
      expect(got.shape).toEqual(output(json, name).shape);
      (output(json, name).data as number[]).forEach((v, i) =>
        expect(got.values[i] as number).toBeCloseTo(v, 6),
      );
    }
    expect(r.tensors.get('features')!.parameters).toEqual({ t: 0.5, binary_data_size: 256 });
  });

  it('binary BYTES input (length-prefixed PNGs) and a per-output binary_data choice', async () => {
    const png2 = await testPng(8, 8, 1, 9);
    const data = bytesElements([png, png2]);
    const r = await client.inferBinary(
      'oodm',
      {
        inputs: [
          {
            name: 'image_bytes',
            datatype: 'BYTES',
            shape: [2],
            parameters: { binary_data_size: data.length },
          },
        ],
        outputs: [
          { name: 'ood_flag', parameters: { binary_data: true } },
          { name: 'probabilities' },
        ],
      },
      [data],
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.tensors.get('ood_flag')).toMatchObject({ datatype: 'BOOL', values: [true, true] });
    const p = (r.body as InferResponse).outputs[1];
    expect(p.shape).toEqual([2, 3]);
    expect(p.data).toHaveLength(6);
  });

  it('a UINT8 pixels tensor as binary data', async () => {
    const r = await client.inferBinary(
      'tiny',
      {
        inputs: [
          {
            name: 'pixels',
            datatype: 'UINT8',
            shape: [1, 1, 8, 8],
            parameters: { binary_data_size: 64 },
          },
        ],
        outputs: [{ name: 'logits' }],
      },
      [Buffer.from(pixels)],
    );
    const j = (
      await client.infer('tiny', { inputs: [imageInput()], outputs: [{ name: 'logits' }] })
    ).body as InferResponse;
    expect(r.status).toBe(200);
    (r.tensors.get('logits')!.values as number[]).forEach((v, i) =>
      expect(v).toBeCloseTo((output(j, 'logits').data as number[])[i], 5),
    );
  });
});

// ---- bad requests ---------------------------------------------------------------------------------

describe('infer: bad requests answer 4xx with the protocol error object', () => {
  const bad = (req: InferRequest | string, model = 'tiny') => client.infer(model, req);

  it('wrong datatypes', async () => {
    expectError(
      await bad({ inputs: [{ ...imageInput(), datatype: 'INT32' }] }),
      400,
      'INVALID_DATATYPE',
      /input "image" is FP32, got "INT32"/,
    );
    expectError(
      await bad({
        inputs: [{ name: 'image', datatype: 'UINT8', shape: [1, 1, 8, 8], data: pixels }],
      }),
      400,
      'INVALID_DATATYPE',
      /UINT8 data goes in input "pixels"/,
    );
    expectError(
      await bad({
        inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 1, 8, 8], data: image }],
      }),
      400,
      'INVALID_DATATYPE',
    );
    expectError(
      await bad({ inputs: [{ name: 'image_bytes', datatype: 'UINT8', shape: [1], data: [1] }] }),
      400,
      'INVALID_DATATYPE',
    );
  });

  it('wrong shapes', async () => {
    for (const shape of [
      [1, 1, 8],
      [1, 1, 4, 16],
      [1, 3, 8, 8],
      [1, 1, 8, 8, 1],
    ])
      expectError(
        await bad({ inputs: [imageInput(image, shape)] }),
        400,
        'INVALID_SHAPE',
        /does not match \[-1, 1, 8, 8\]/,
      );
    expectError(
      await bad({ inputs: [imageInput([], [0, 1, 8, 8])] }),
      400,
      'INVALID_SHAPE',
      /batch size 0/,
    );
    expectError(
      await bad({
        inputs: [{ name: 'image_bytes', datatype: 'BYTES', shape: [1, 1], data: ['x'] }],
      }),
      400,
      'INVALID_SHAPE',
    );
    expectError(
      await bad({ inputs: [imageInput(image, [1, 1, 8, -8])] }),
      400,
      'VALIDATION_FAILED',
      /shape/,
    );
  });

  it('data that does not fit the shape or the datatype', async () => {
    expectError(
      await bad({ inputs: [imageInput(image.slice(1))] }),
      400,
      'INVALID_TENSOR_DATA',
      /63 elements, shape \[1, 1, 8, 8\] needs 64/,
    );
    expectError(
      await bad({ inputs: [imageInput([[image.slice(0, 32), image.slice(32)]])] }),
      400,
      'INVALID_TENSOR_DATA',
      /input "image"\[0\]: expected an array of 1 \(shape \[1, 1, 8, 8\]\), got 2 elements/,
    );
    expectError(
      await bad({ inputs: [imageInput(['a', ...image.slice(1)])] }),
      400,
      'INVALID_TENSOR_DATA',
      /element 0 is "a", not an FP32 number/,
    );
    expectError(
      await bad({
        inputs: [
          {
            name: 'pixels',
            datatype: 'UINT8',
            shape: [1, 1, 8, 8],
            data: [256, ...pixels.slice(1)],
          },
        ],
      }),
      400,
      'INVALID_TENSOR_DATA',
      /not a UINT8 integer/,
    );
    expectError(
      await bad({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 8, 8] }] }),
      400,
      'INVALID_TENSOR_DATA',
      /no data/,
    );
    expectError(
      await bad({
        inputs: [
          {
            name: 'image_bytes',
            datatype: 'BYTES',
            shape: [1],
            data: [Buffer.from('not an image').toString('base64')],
          },
        ],
      }),
      400,
      'INVALID_IMAGE',
      /image_bytes\[0\]/,
    );
  });

  it('unknown inputs, more than one input, unknown outputs', async () => {
    expectError(
      await bad({ inputs: [{ ...imageInput(), name: 'input0' }] }),
      400,
      'UNKNOWN_INPUT',
      /unknown input "input0"; model tiny@0.0.2 takes one of image \(FP32\), pixels \(UINT8\), image_bytes \(BYTES\)/,
    );
    expectError(
      await bad({
        inputs: [
          imageInput(),
          { name: 'pixels', datatype: 'UINT8', shape: [1, 1, 8, 8], data: pixels },
        ],
      }),
      400,
      'INVALID_INPUTS',
      /send exactly one of/,
    );
    expectError(
      await bad({ inputs: [imageInput()], outputs: [{ name: 'output0' }] }),
      400,
      'UNKNOWN_OUTPUT',
      /unknown output "output0"; model tiny@0.0.2 has logits, probabilities, features/,
    );
    // A model without OOD thresholds has no ood outputs.
    expectError(
      await bad({ inputs: [imageInput()], outputs: [{ name: 'ood_flag' }] }),
      400,
      'UNKNOWN_OUTPUT',
    );
  });

  it('malformed bodies and parameters', async () => {
    expectError(await bad('{"inputs": ['), 400, 'INVALID_JSON');
    expectError(await bad('[1, 2]'), 400, 'VALIDATION_FAILED', /inference request object/);
    expectError(await bad({ inputs: [] }), 400, 'VALIDATION_FAILED', /inputs must not be empty/);
    expectError(
      await bad({ inputs: [imageInput()], parameters: { steps: 0 } }),
      400,
      'VALIDATION_FAILED',
      /steps must be at least 1/,
    );
    expectError(
      await bad({ inputs: [imageInput()], parameters: { solver: 'leapfrog' } }),
      400,
      'VALIDATION_FAILED',
      /solver must be one of/,
    );
    expectError(await bad({ inputs: [imageInput()], parameters: { t: 2 } }), 400, 'INVALID_T');
    expectError(
      await bad({ inputs: [imageInput()], parameters: { steps: 21 } }),
      400,
      'INVALID_STEPS',
    );
    expectError(
      await bad({
        inputs: [imageInput([...image, ...image, ...image, ...image, ...image], [5, 1, 8, 8])],
      }),
      400,
      'TOO_MANY_IMAGES',
    );
    // Parameters the server does not know (a Triton client's own) are ignored.
    const ok = await bad({ inputs: [imageInput()], parameters: { priority: 0, timeout: 100 } });
    expect(ok.status).toBe(200);
  });

  it('binary data that does not add up', async () => {
    const header = (size: number): InferRequest => ({
      inputs: [
        {
          name: 'image',
          datatype: 'FP32',
          shape: [1, 1, 8, 8],
          parameters: { binary_data_size: size },
        },
      ],
    });
    expectError(
      await client.inferBinary('tiny', header(256), [fp32Bytes(image).subarray(0, 200)]),
      400,
      'INVALID_BINARY_DATA',
      /adds up to 256 bytes, the body has 200/,
    );
    expectError(
      await client.inferBinary('tiny', header(200), [fp32Bytes(image).subarray(0, 200)]),
      400,
      'INVALID_BINARY_DATA',
      /200 bytes of binary data, FP32 \[1, 1, 8, 8\] needs 256/,
    );
    const bytes = {
      inputs: [
        {
          name: 'image_bytes',
          datatype: 'BYTES',
          shape: [2],
          parameters: { binary_data_size: png.length + 4 },
        },
      ],
    };
    expectError(
      await client.inferBinary('tiny', bytes, [bytesElements([png])]),
      400,
      'INVALID_BINARY_DATA',
      /1 BYTES elements in the binary data, shape needs 2/,
    );
    const r = await fetch(`${base}/v2/models/tiny/infer`, {
      method: 'POST',
      headers: { 'Inference-Header-Content-Length': '99999' },
      body: JSON.stringify({ inputs: [imageInput()] }),
    });
    expectError({ status: r.status, body: await r.json() }, 400, 'INVALID_BINARY_DATA');
  });

  it('a body over MAX_UPLOAD_BYTES: 413 in the protocol shape', async () => {
    const r = await fetch(`${base}/v2/models/tiny/infer`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ inputs: [imageInput()], pad: 'x'.repeat(250_000) }),
    });
    expectError({ status: r.status, body: await r.json() }, 413, 'PAYLOAD_TOO_LARGE');
  });
});

describe('readiness turning false', () => {
  it('a model that fails to load: infer 503, model ready 400 {ready: false}', async () => {
    const dir = path.join(t.modelsDir, 'broken-1');
    await createTinyModel(dir, { name: 'broken', version: '1' });
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    await writeFile(path.join(dir, m.files.velocity), 'not onnx');
    expectError(await client.infer('broken', { inputs: [imageInput()] }), 503, 'MODEL_LOAD_FAILED');
    const r = await client.modelReady('broken');
    expect([r.status, r.body]).toEqual([400, { name: 'broken', ready: false }]);
    await rm(dir, { recursive: true });
  });

  it('server ready: 400 {ready: false} while draining for shutdown; live stays 200', async () => {
    await t.app.get(HealthService).drain(0);
    const r = await client.serverReady();
    expect([r.status, r.body]).toEqual([400, { ready: false }]);
    expect((await client.serverLive()).status).toBe(200);
  });
});
