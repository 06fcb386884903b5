import { describe, expect, it } from 'vitest';
import { unsafeEntryName } from './safe-zip';

describe('unsafeEntryName', () => {
  it.each([
    ['../x.png', /traversal/],
    ['a/../../x.png', /traversal/],
    ['a/..', /traversal/],
    ['/etc/passwd', /absolute/],
    ['C:/x.png', /absolute/],
    ['c:x.png', /absolute/],
    ['a\\b.png', /backslash/],
    ['..\\x.png', /backslash/],
    ['a//b.png', /empty or "."/],
    ['./a/b.png', /empty or "."/],
    ['a/\u0000b.png', /control/],
    ['', /empty name/],
  ])('%j is refused', (name, why) => {
    expect(unsafeEntryName(name)).toMatch(why);
  });
  it.each(['a/b.png', 'top/a/b.png', 'a/', 'a/..b.png', 'a/b..png', 'ünï/çødé.png'])(
    '%j is fine',
    (name) => {
      expect(unsafeEntryName(name)).toBeNull();
    },
  );
});
