import { describe, expect, it } from 'vitest';
import { jsonDepth, MAX_JSON_DEPTH, rejectPrototypeKeys, verifyJsonDepth } from './json-body';

const b = (s: string) => Buffer.from(s);

describe('jsonDepth', () => {
  it('counts arrays and objects, not brackets inside strings or after escapes', () => {
    expect(jsonDepth(b('1'))).toBe(0);
    expect(jsonDepth(b('{"a":[1,{"b":[]}]}'))).toBe(4);
    expect(jsonDepth(b('{"a":"[[[[{{{{"}'))).toBe(1);
    expect(jsonDepth(b('["\\"[[[", []]'))).toBe(2);
  });

  it('stops scanning once past the cap', () => {
    expect(jsonDepth(b('['.repeat(1000)), 10)).toBe(11);
  });
});

describe('verifyJsonDepth', () => {
  it(`passes ${MAX_JSON_DEPTH} levels and refuses one more as a 400 parse failure`, () => {
    const nest = (n: number) => b('['.repeat(n) + ']'.repeat(n));
    expect(() => verifyJsonDepth(null, null, nest(MAX_JSON_DEPTH))).not.toThrow();
    expect(() => verifyJsonDepth(null, null, nest(MAX_JSON_DEPTH + 1))).toThrow(
      expect.objectContaining({ status: 400, type: 'entity.parse.failed' }),
    );
  });
});

describe('rejectPrototypeKeys', () => {
  const parse = (s: string) => JSON.parse(s, rejectPrototypeKeys) as unknown;
  it('refuses __proto__ and constructor.prototype at any depth', () => {
    expect(() => parse('{"a":{"__proto__":{"x":1}}}')).toThrow(/__proto__/);
    expect(() => parse('{"constructor":{"prototype":{"x":1}}}')).toThrow(/constructor/);
  });
  it('keeps every other key, "constructor" as plain data included', () => {
    expect(parse('{"constructor":"x","proto":[1,{"b":2}]}')).toEqual({
      constructor: 'x',
      proto: [1, { b: 2 }],
    });
  });
});
