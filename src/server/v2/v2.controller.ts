/**
 * The Open Inference Protocol (KServe "v2" REST API) for every served model, beside the server's
 * own API: health, server and model metadata, and `infer` with named, typed tensors (JSON or the
 * binary tensor extension). Everything goes through the ML boundary (MlService). Errors under
 * /v2 are the protocol's `{"error": "…"}` (plus this server's `code`), rendered by the global
 * filter (app.ts), so body-parser errors and unknown /v2 routes answer in the same shape.
 */
import {
  applyDecorators,
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Req,
  Res,
  StreamableFile,
  Type,
  UseGuards,
  ValidationPipe,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConsumes,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ApiError, badRequest } from '../common/errors';
import { RateLimitGuard } from '../common/rate-limit.guard';
import { HealthService } from '../health/health.service';
import { MlService } from '../ml/ml.service';
import type { ModelDetail } from '../schemas/model.schema';
import { SERVER_NAME, SERVER_VERSION } from '../server-info';
import { HEADER_LENGTH, joinBody, splitBody } from './v2-body';
import { inferArgs, inferResponse, readInputs, requestedOutputs } from './v2-infer';
import { modelMetadata } from './v2-model';
import {
  V2ErrorResponse,
  V2InferRequest,
  V2InferResponse,
  V2ModelMetadata,
  V2ModelReady,
  V2ServerLive,
  V2ServerMetadata,
  V2ServerReady,
} from './v2.schemas';

const ERROR = { type: V2ErrorResponse, description: '{"error": "…", "code": "…"}' };
/** Health answers per the protocol: 200 true, 4xx false. */
const NOT_READY = HttpStatus.BAD_REQUEST;

/** A model metadata or readiness route: its answer type, and 404 for unknown models. */
const ModelRoute = (type: Type<unknown>, summary: string) =>
  applyDecorators(ApiOperation({ summary }), ApiOkResponse({ type }), ApiNotFoundResponse(ERROR));

/** An infer route: 200, rate limited, JSON or binary tensors in and out. */
const InferRoute = (summary: string) =>
  applyDecorators(
    HttpCode(200),
    UseGuards(RateLimitGuard),
    ApiOperation({ summary }),
    ApiConsumes('application/json', 'application/octet-stream'),
    ApiProduces('application/json', 'application/octet-stream'),
    ApiBody({ type: V2InferRequest }),
    ApiOkResponse({ type: V2InferResponse }),
    ApiBadRequestResponse(ERROR),
    ApiNotFoundResponse(ERROR),
  );

@ApiTags('v2 (Open Inference Protocol)')
@Controller('v2')
export class V2Controller {
  // Lenient like the protocol: unknown fields and parameters pass (see v2.schemas.ts).
  private readonly validation = new ValidationPipe({ transform: true });

  constructor(
    private readonly ml: MlService,
    private readonly health: HealthService,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Server metadata' })
  @ApiOkResponse({ type: V2ServerMetadata })
  serverMetadata(): V2ServerMetadata {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: ['binary_tensor_data'] };
  }

  @Get('health/live')
  @ApiOperation({ summary: 'Server live: the process answers' })
  @ApiOkResponse({ type: V2ServerLive })
  live(): V2ServerLive {
    return { live: true };
  }

  @Get('health/ready')
  @ApiOperation({ summary: 'Server ready: 200, or 400 while not ready (as GET /health/ready)' })
  @ApiOkResponse({ type: V2ServerReady })
  async ready(@Res({ passthrough: true }) res: Response): Promise<V2ServerReady> {
    const { ready } = await this.health.readiness();
    res.status(ready ? HttpStatus.OK : NOT_READY);
    return { ready };
  }

  // Each model route twice: for the latest version and for a given one. (One handler with two
  // paths would give the versionless path a `version` parameter in the OpenAPI document.)

  @Get('models/:name')
  @ModelRoute(V2ModelMetadata, 'Model metadata (latest version)')
  metadata(@Param('name') name: string): Promise<V2ModelMetadata> {
    return this.metadataOf(name);
  }

  @Get('models/:name/versions/:version')
  @ModelRoute(V2ModelMetadata, 'Model metadata (one version)')
  metadataOfVersion(
    @Param('name') name: string,
    @Param('version') version: string,
  ): Promise<V2ModelMetadata> {
    return this.metadataOf(name, version);
  }

  @Get('models/:name/ready')
  @ModelRoute(V2ModelReady, 'Model ready (latest version): 200, or 400 once it failed to load')
  modelReady(
    @Res({ passthrough: true }) res: Response,
    @Param('name') name: string,
  ): Promise<V2ModelReady> {
    return this.readyOf(res, name);
  }

  @Get('models/:name/versions/:version/ready')
  @ModelRoute(V2ModelReady, 'Model ready (one version): 200, or 400 once it failed to load')
  modelVersionReady(
    @Res({ passthrough: true }) res: Response,
    @Param('name') name: string,
    @Param('version') version: string,
  ): Promise<V2ModelReady> {
    return this.readyOf(res, name, version);
  }

  @Post('models/:name/infer')
  @InferRoute('Inference (latest version)')
  infer(
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
    @Param('name') name: string,
  ): Promise<V2InferResponse | StreamableFile> {
    return this.inferOn(req, res, name);
  }

  @Post('models/:name/versions/:version/infer')
  @InferRoute('Inference (one version)')
  inferVersion(
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
    @Param('name') name: string,
    @Param('version') version: string,
  ): Promise<V2InferResponse | StreamableFile> {
    return this.inferOn(req, res, name, version);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** The model named in the path: a name (its latest version) and optionally a version. */
  private model(name: string, version?: string): Promise<ModelDetail> {
    // Protocol names are bare names; "name@version" is this server's id syntax, not a name.
    if (name.includes('@') || version?.includes('@'))
      throw new ApiError(
        HttpStatus.NOT_FOUND,
        'MODEL_NOT_FOUND',
        `unknown model "${name}"${version ? ` version "${version}"` : ''}: give the version in the path (/v2/models/<name>/versions/<version>)`,
      );
    return this.ml.model(version === undefined ? name : `${name}@${version}`);
  }

  private async metadataOf(name: string, version?: string): Promise<V2ModelMetadata> {
    const m = await this.model(name, version);
    const versions = this.ml
      .models()
      .models.filter((x) => x.name === m.name)
      .map((x) => x.version);
    return modelMetadata(m, versions);
  }

  /** Ready: known and not failed to load (a model not loaded yet loads on its first request). */
  private async readyOf(res: Response, name: string, version?: string): Promise<V2ModelReady> {
    const m = await this.model(name, version);
    const ready = !m.loadError;
    res.status(ready ? HttpStatus.OK : NOT_READY);
    return { name: m.name, ready };
  }

  private async parse(json: unknown): Promise<V2InferRequest> {
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      throw badRequest('VALIDATION_FAILED', 'the body must be an inference request object');
    return (await this.validation.transform(json, {
      type: 'body',
      metatype: V2InferRequest,
    })) as V2InferRequest;
  }

  private async inferOn(
    req: Request,
    res: Response,
    name: string,
    version?: string,
  ): Promise<V2InferResponse | StreamableFile> {
    const m = await this.model(name, version);
    // app.ts reads /v2 bodies raw: JSON, or JSON + binary tensors (any content type).
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const { json, binary } = splitBody(raw, req.headers[HEADER_LENGTH]);
    const body = await this.parse(json);
    const outputs = requestedOutputs(body, m);
    const inputs = readInputs(body, binary, m);
    const result = await this.ml.infer(m.id, inferArgs(body, outputs), inputs);
    const { json: answer, parts } = inferResponse(body, result, outputs, m);
    if (parts.length === 0) return answer;
    const { body: bytes, headerLength } = joinBody(answer, parts);
    res.setHeader('Inference-Header-Content-Length', String(headerLength));
    return new StreamableFile(bytes, { type: 'application/octet-stream', length: bytes.length });
  }
}
