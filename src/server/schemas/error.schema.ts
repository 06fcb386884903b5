/** The one error shape of every REST route (common/http-exception.filter.ts), for OpenAPI. */
import { ApiProperty } from '@nestjs/swagger';

export class ErrorResponse {
  @ApiProperty({ example: 400 }) statusCode!: number;
  @ApiProperty({ example: 'INVALID_IMAGE' }) code!: string;
  @ApiProperty({ example: 'images[0]: not a readable image' }) message!: string;
}
