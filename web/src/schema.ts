/** The server's OpenAPI document, fetched once per page load and shared by every form. */
import { getJson } from './api';
import type { OpenApiDocument } from './openapi';

let doc: Promise<OpenApiDocument> | null = null;

export function openApi(): Promise<OpenApiDocument> {
  doc ??= getJson<OpenApiDocument>('/docs-json').catch((e: unknown) => {
    doc = null; // try again next time
    throw e;
  });
  return doc;
}
