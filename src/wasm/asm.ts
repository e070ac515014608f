/**
 * The little that hand-assembling a WebAssembly module takes: LEB128 immediates, sections and
 * names, and a typing of the WebAssembly global (the project's TypeScript libs do not declare
 * it). The modules themselves (the scanner's kernel, the wire encoder, SHA-512) list their
 * instructions next to the WAT they correspond to.
 */

/** Unsigned LEB128 (sizes, counts, indices). */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit value (so 64..127 take two bytes). */
export function sleb32(v: number): number[] {
  const out: number[] = [];
  v |= 0;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** Signed LEB128 of a 64-bit value given as its two's-complement bits. */
export function sleb64(bits: bigint): number[] {
  let v = BigInt.asIntN(64, bits);
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

export const I32_CONST = 0x41;
export const I64_CONST = 0x42;
/** An i32.const instruction. */
export const i32const = (v: number): number[] => [I32_CONST, ...sleb32(v)];
/** An i64.const instruction. */
export const i64const = (bits: bigint): number[] => [I64_CONST, ...sleb64(bits)];

/** A vector: its length, then its items. */
export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
/** A section: id, byte size, content. */
export const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];
/** A name (import or export). */
export const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'latin1')];
/** The module header: magic and version 1. */
export const MODULE_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** The part of the WebAssembly JS API used by the modules. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { exports: Record<string, unknown> };
  Memory: new (desc: { initial: number; maximum?: number }) => WasmMemory;
}

/** The WebAssembly global, or undefined where the runtime has none. */
export const WA = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/**
 * Compiles and instantiates a module that has its own memory and no imports: its exports, or
 * null where the runtime has no WebAssembly or rejects the module (no SIMD, say). Callers keep
 * the instance and fall back to JavaScript or node:crypto on null.
 */
export function instantiateOwn(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    return WA !== undefined && WA.validate(bytes) ? new WA.Instance(new WA.Module(bytes)).exports : null;
  } catch {
    return null;
  }
}
