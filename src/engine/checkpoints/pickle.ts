/**
 * A restricted unpickler: it reads Python pickle protocols 0–5 as data and never runs code.
 *
 * Python's own unpickler imports any `module.name` a file mentions and calls it, which is why a
 * `.pt` file from a stranger can run anything. Here every global goes through `resolveGlobal`,
 * supplied by the caller (torch-zip.ts gives the few a state_dict needs); REDUCE, NEWOBJ and BUILD
 * only ever reach those JS functions or build inert placeholders. An unknown global, an unknown
 * opcode or a truncated stream is a PickleError naming the byte offset.
 *
 * Python values map to: None → null, bool, int → number (bigint beyond 2^53), float, str,
 * bytes → Uint8Array, list and tuple → arrays, dict → Map, set → Set.
 */

export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

/** A global the caller allows: called by REDUCE/NEWOBJ with the argument tuple. */
export interface PyCallable {
  readonly pyName: string;
  call(args: unknown[]): unknown;
}

/**
 * An object of a class the reader does not interpret (argparse.Namespace, numpy scalars,
 * optimizer extras): kept with its constructor arguments and BUILD state, never instantiated.
 */
export class Opaque {
  state: unknown = undefined;
  constructor(
    readonly pyClass: string,
    readonly args: unknown[],
  ) {}
}

/** A class that unpickles into an Opaque placeholder. */
export function opaqueClass(pyName: string): PyCallable {
  return { pyName, call: (args) => new Opaque(pyName, args) };
}

export interface UnpickleOptions {
  /** module + name → what the global means; undefined = not allowed (PickleError). */
  resolveGlobal(module: string, name: string): PyCallable | undefined;
  /** BINPERSID / PERSID: the pickled id → the object it stands for. */
  persistentLoad?(pid: unknown): unknown;
  /** BUILD on an object that is not an Opaque: return true if handled. */
  build?(obj: unknown, state: unknown): boolean;
}

const MARK = Symbol('mark');

export function unpickle(data: Uint8Array, opts: UnpickleOptions): unknown {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  let pos = 0;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new PickleError(`pickle byte ${pos}: ${msg}`);
  };
  const need = (n: number) => {
    if (n < 0 || pos + n > data.length)
      fail(`truncated (needs ${n} more bytes, ${data.length - pos} left)`);
  };
  const u8 = () => (need(1), data[pos++]);
  const u16 = () => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const i32 = () => (need(4), (pos += 4), dv.getInt32(pos - 4, true));
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.length)) fail(`length ${v} exceeds the data`);
    return Number(v);
  };
  const bytes = (n: number) => {
    need(n);
    pos += n;
    return data.subarray(pos - n, pos);
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('truncated (no end of line)');
    const s = latin1.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const str = (n: number) => {
    try {
      return utf8.decode(bytes(n));
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  // A function, not stack.push: `stack.push(popMark())` would push onto the stack popMark left.
  const push = (v: unknown) => {
    stack.push(v);
  };
  const pop = (): unknown => {
    if (!stack.length) fail('stack underflow');
    const v = stack.pop();
    if (v === MARK) fail('unexpected mark');
    return v;
  };
  const top = (): unknown => {
    if (!stack.length) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) fail('no mark to pop to');
    stack = prev as unknown[];
    return items;
  };
  const memoGet = (k: number) => {
    if (!memo.has(k)) fail(`memo key ${k} is not defined`);
    return memo.get(k);
  };
  const signedLE = (b: Uint8Array): number | bigint => {
    if (!b.length) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v;
  };
  const global = (module: string, name: string): PyCallable => {
    const g = opts.resolveGlobal(module, name);
    if (!g) fail(`global ${module}.${name} is not allowed (only state_dict contents are read)`);
    return g as PyCallable;
  };
  const callable = (f: unknown, what: string): PyCallable => {
    if (typeof f !== 'object' || f === null || typeof (f as PyCallable).call !== 'function')
      fail(`${what} applied to something that is not an allowed global`);
    return f as PyCallable;
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (d instanceof Map) for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
    else if (d instanceof Opaque) {
      const m = d.state instanceof Map ? d.state : new Map();
      for (let i = 0; i + 1 < kv.length; i += 2) m.set(kv[i], kv[i + 1]);
      d.state = m;
    } else fail('SETITEM(S) on something that is not a dict');
  };
  const appendItems = (l: unknown, items: unknown[]) => {
    if (Array.isArray(l)) l.push(...items);
    else if (l instanceof Opaque) {
      const a = Array.isArray(l.state) ? l.state : [];
      a.push(...items);
      l.state = a;
    } else fail('APPEND(S) on something that is not a list');
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME (length only; frames are read as one stream)
        bytes(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return pop();
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(signedLE(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) fail('negative LONG4 length');
        push(signedLE(bytes(n)));
        break;
      }
      case 0x49: {
        // INT (protocol 0): "01"/"00" are True/False
        const s = line();
        if (s === '01' || s === '00') push(s === '01');
        else if (/^-?\d+$/.test(s)) push(Number(s));
        else fail(`bad INT ${JSON.stringify(s)}`);
        break;
      }
      case 0x4c: {
        // LONG (protocol 0)
        const s = line().replace(/L$/, '');
        if (!/^-?\d+$/.test(s)) fail(`bad LONG ${JSON.stringify(s)}`);
        const v = BigInt(s);
        push(
          v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
            ? Number(v)
            : v,
        );
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x46: {
        // FLOAT (protocol 0)
        const v = Number(line());
        if (Number.isNaN(v)) fail('bad FLOAT');
        push(v);
        break;
      }
      case 0x58: // BINUNICODE
        push(str(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(str(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(str(u64()));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str): kept as a latin-1 string
        const n = i32();
        if (n < 0) fail('negative BINSTRING length');
        push(latin1.decode(bytes(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        push(latin1.decode(bytes(u8())));
        break;
      case 0x42: // BINBYTES
        push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
        push(bytes(u64()).slice());
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        push([]);
        break;
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x8f: // EMPTY_SET
        push(new Set());
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x85: // TUPLE1
        push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push([pop(), b, c]);
        break;
      }
      case 0x64: {
        // DICT
        const kv = popMark();
        const d = new Map();
        setItems(d, kv);
        push(d);
        break;
      }
      case 0x91: // FROZENSET
        push(new Set(popMark()));
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail('ADDITEMS on something that is not a set');
        for (const i of items) (s as Set<unknown>).add(i);
        break;
      }
      case 0x30: // POP
        if (stack.length) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: {
        // PUT (protocol 0)
        const k = Number(line());
        if (!Number.isInteger(k)) fail('bad PUT index');
        memo.set(k, top());
        break;
      }
      case 0x68: // BINGET
        push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(memoGet(u32()));
        break;
      case 0x67: // GET (protocol 0)
        push(memoGet(Number(line())));
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          fail('STACK_GLOBAL needs two strings');
        push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const f = callable(pop(), 'REDUCE');
        if (!Array.isArray(args)) fail(`REDUCE of ${f.pyName} without an argument tuple`);
        push(f.call(args as unknown[]));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = callable(pop(), 'NEWOBJ');
        push(cls.call(Array.isArray(args) ? args : []));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop(); // kwargs
        const args = pop();
        const cls = callable(pop(), 'NEWOBJ_EX');
        push(cls.call(Array.isArray(args) ? args : []));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof Opaque) obj.state = state;
        else if (!opts.build?.(obj, state))
          fail(`BUILD on a ${describe(obj)}, which takes no state here`);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('persistent id in a pickle that allows none');
        push(opts.persistentLoad?.(pid));
        break;
      }
      case 0x50: // PERSID
        if (!opts.persistentLoad) fail('persistent id in a pickle that allows none');
        push(opts.persistentLoad?.(line()));
        break;
      default:
        pos--;
        fail(`unsupported opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'list/tuple';
  if (v instanceof Map) return 'dict';
  return typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}
