/**
 * The Open Inference Protocol's JSON objects (KServe "v2" REST: kserve/open-inference-protocol,
 * specification/protocol/inference_rest.md; binary tensors: Triton's
 * docs/protocol/extension_binary_data.md), one class per shape, with the OpenAPI and
 * class-validator decorators. Names are the protocol's (snake_case), not ours.
 *
 * Validation is lenient where the protocol is: unknown fields and unknown parameters are ignored
 * (clients attach their own, e.g. Triton's `priority`, `timeout`, `model_name`); the tensor data
 * itself is checked against the model by the mapping layer (v2-tensors.ts).
 */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Min,
  ValidateNested,
} from 'class-validator';
import { SOLVER_NAMES, SolverName } from '../../prg/manifest';

/** The protocol's tensor data types that this server reads or writes. */
export type V2Datatype = 'FP32' | 'UINT8' | 'BYTES' | 'BOOL';

/** JSON tensor data: row-major, flattened or nested as the shape. */
export type V2TensorData = (number | string | boolean | V2TensorData)[];

export class V2ServerMetadata {
  @ApiProperty({ example: 'prg-server' }) name!: string;
  @ApiProperty({ example: '0.1.0' }) version!: string;
  @ApiProperty({ type: [String], example: ['binary_tensor_data'] }) extensions!: string[];
}

export class V2ServerLive {
  @ApiProperty() live!: boolean;
}

export class V2ServerReady {
  @ApiProperty() ready!: boolean;
}

export class V2ModelReady {
  @ApiProperty({ example: 'prg-mnist' }) name!: string;
  @ApiProperty() ready!: boolean;
}

export class V2MetadataTensor {
  @ApiProperty({ example: 'image' }) name!: string;
  @ApiProperty({ example: 'FP32' }) datatype!: V2Datatype;
  @ApiProperty({ type: [Number], example: [-1, 1, 28, 28], description: '-1: any size' })
  shape!: number[];
}

export class V2ModelMetadata {
  @ApiProperty({ example: 'prg-mnist' }) name!: string;
  @ApiProperty({ type: [String], example: ['4'] }) versions!: string[];
  @ApiProperty({ example: 'prg_onnx' }) platform!: string;
  @ApiProperty({ type: [V2MetadataTensor] }) inputs!: V2MetadataTensor[];
  @ApiProperty({ type: [V2MetadataTensor] }) outputs!: V2MetadataTensor[];
}

/**
 * Request parameters this server reads; any other parameter is ignored. `t`, `steps`, `solver`
 * are this server's own (the protocol lets servers define parameters); `binary_data_output` is
 * the binary tensor extension's.
 */
export class V2InferParameters {
  @ApiPropertyOptional({ description: 'Time of the features output in (0, 1] (default t*)' })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'parameters.t must be a number' })
  t?: number;

  @ApiPropertyOptional({ description: 'ODE steps of the reverse process (default: manifest)' })
  @IsOptional()
  @IsInt({ message: 'parameters.steps must be an integer' })
  @Min(1, { message: 'parameters.steps must be at least 1' })
  steps?: number;

  @ApiPropertyOptional({ enum: SOLVER_NAMES, description: 'ODE solver (default: manifest)' })
  @IsOptional()
  @IsIn(SOLVER_NAMES, { message: `parameters.solver must be one of ${SOLVER_NAMES.join(', ')}` })
  solver?: SolverName;

  @ApiPropertyOptional({ description: 'Binary tensor extension: every output as binary data' })
  @IsOptional()
  @IsBoolean({ message: 'parameters.binary_data_output must be a boolean' })
  binary_data_output?: boolean;
}

export class V2RequestInput {
  @ApiProperty({ enum: ['image', 'pixels', 'image_bytes'] })
  @IsString({ message: 'every input needs a name' })
  name!: string;

  @ApiProperty({ type: [Number], example: [1, 1, 28, 28] })
  @IsArray({ message: 'input shape must be an array of integers' })
  @IsInt({ each: true, message: 'input shape must be an array of integers' })
  @Min(0, { each: true, message: 'input shape dimensions must be ≥ 0' })
  shape!: number[];

  @ApiProperty({ enum: ['FP32', 'UINT8', 'BYTES'] })
  @IsString({ message: 'every input needs a datatype' })
  datatype!: string;

  @ApiPropertyOptional({
    type: Object,
    description: 'binary tensor extension: {"binary_data_size": <bytes after the JSON header>}',
  })
  @IsOptional()
  @IsObject({ message: 'input parameters must be an object' })
  parameters?: Record<string, unknown>;

  @ApiPropertyOptional({
    type: 'array',
    items: {},
    description:
      'row-major, flattened or nested; BYTES: base64 strings; absent when the data is binary',
  })
  @IsOptional()
  @IsArray({ message: 'input data must be an array' })
  data?: V2TensorData;
}

export class V2RequestOutput {
  @ApiProperty({ enum: ['logits', 'probabilities', 'features', 'ood_score', 'ood_flag'] })
  @IsString({ message: 'every requested output needs a name' })
  name!: string;

  @ApiPropertyOptional({
    type: Object,
    description: 'binary tensor extension: {"binary_data": true}',
  })
  @IsOptional()
  @IsObject({ message: 'output parameters must be an object' })
  parameters?: Record<string, unknown>;
}

export class V2InferRequest {
  @ApiPropertyOptional({ description: 'Echoed in the response' })
  @IsOptional()
  @IsString({ message: 'id must be a string' })
  id?: string;

  @ApiPropertyOptional({ type: V2InferParameters })
  @IsOptional()
  @IsObject({ message: 'parameters must be an object' })
  @ValidateNested()
  @Type(() => V2InferParameters)
  parameters?: V2InferParameters;

  @ApiProperty({ type: [V2RequestInput] })
  @IsArray({ message: 'inputs must be an array' })
  @ArrayMinSize(1, { message: 'inputs must not be empty' })
  @ValidateNested({ each: true })
  @Type(() => V2RequestInput)
  inputs!: V2RequestInput[];

  @ApiPropertyOptional({ type: [V2RequestOutput], description: 'default: every output' })
  @IsOptional()
  @IsArray({ message: 'outputs must be an array' })
  @ValidateNested({ each: true })
  @Type(() => V2RequestOutput)
  outputs?: V2RequestOutput[];
}

export class V2ResponseOutput {
  @ApiProperty() name!: string;
  @ApiProperty({ type: [Number] }) shape!: number[];
  @ApiProperty({ enum: ['FP32', 'BOOL'] }) datatype!: V2Datatype;
  @ApiPropertyOptional({ type: Object }) parameters?: Record<string, number | string | boolean>;
  @ApiPropertyOptional({ type: 'array', items: {}, description: 'row-major, flattened' })
  data?: (number | boolean)[];
}

export class V2InferResponse {
  @ApiProperty() model_name!: string;
  @ApiProperty() model_version!: string;
  @ApiPropertyOptional() id?: string;
  @ApiPropertyOptional({ type: Object }) parameters?: Record<string, number | string | boolean>;
  @ApiProperty({ type: [V2ResponseOutput] }) outputs!: V2ResponseOutput[];
}

/** The protocol's error object; `code` is this server's stable code (README error table). */
export class V2ErrorResponse {
  @ApiProperty({ example: 'input "image": shape [1, 1, 28] does not match [-1, 1, 28, 28]' })
  error!: string;
  @ApiProperty({ example: 'INVALID_SHAPE' }) code!: string;
}
