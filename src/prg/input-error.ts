/**
 * A problem with what a caller handed in (an image, an option), as opposed to a failure of the
 * model. It carries a stable machine-readable code; servers map `kind` to their status (invalid →
 * 400, unsupported → 415, too-large → 413) without src/prg knowing about HTTP.
 */
export type InputErrorKind = 'invalid' | 'unsupported' | 'too-large';

export class InputError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly kind: InputErrorKind = 'invalid',
  ) {
    super(message);
    this.name = 'InputError';
  }
}
