/** Environment parsing shared by every config loader: each bad value is collected, not thrown. */

export type Env = Record<string, string | undefined>;

/** A reader of integer variables that records a message per bad value in `problems`. */
export function envInt(
  env: Env,
  problems: string[],
): (name: string, def: number, min: number, max: number) => number {
  return (name, def, min, max) => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') return def;
    const v = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(v) || v < min || v > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer in [${min}, ${max}]`);
      return def;
    }
    return v;
  };
}
