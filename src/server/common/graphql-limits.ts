/**
 * GraphQL document limits from the configuration, by graphql-armor (a maintained set of Apollo
 * validation rules and plugins): depth, aliases, cost; tokens by the parser; field suggestions in "did you
 * mean" errors are blocked so the schema does not leak with introspection off. Rejections are
 * GraphQL validation errors (HTTP 400, code GRAPHQL_VALIDATION_FAILED; too many tokens is a parse
 * error, GRAPHQL_PARSE_FAILED).
 */
import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { ServerConfig } from '../config/config';

export function graphqlArmor(config: ServerConfig): ReturnType<ApolloArmor['protect']> {
  return new ApolloArmor({
    maxDepth: { n: config.graphqlMaxDepth },
    maxAliases: { n: config.graphqlMaxAliases },
    costLimit: { maxCost: config.graphqlMaxCost },
    // Tokens are capped by graphql-js's own parser option instead (graphqlParseOptions): armor's
    // plugin raised its rejection as a 500.
    maxTokens: { enabled: false },
    maxDirectives: { n: 20 },
    blockFieldSuggestion: { enabled: true },
  }).protect();
}

/** graphql-js `parse` options: a document of more tokens is a syntax error (400) before it is built. */
export function graphqlParseOptions(config: ServerConfig): { maxTokens: number } {
  return { maxTokens: config.graphqlMaxTokens };
}
