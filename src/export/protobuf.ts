// A minimal protocol-buffers writer: the wire format (varints, fixed32, length-delimited fields) and
// nothing else, enough to write the few ONNX messages the exporter needs (onnx-proto.ts holds their field
// numbers). Writing needs no schema compiler and no dependency; reading is never needed.
//
// A message is kept as a list of byte chunks rather than one buffer, so a large tensor's data is written
// as the model's own typed-array views (no copy) and a nested message is its length prefix followed by its
// chunks. `chunks()` hands the whole message to a file writer; `bytes()` joins it for an in-memory model.

/** Protobuf wire types (the low three bits of a field's tag). */
const VARINT = 0;
const FIXED32 = 5;
const LENGTH_DELIMITED = 2;

const TEXT = new TextEncoder();

export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private buffer = new Uint8Array(256);
  private position = 0;
  /** Bytes written so far, across every chunk. */
  private total = 0;

  /** The encoded length of the message in bytes. */
  get length(): number {
    return this.total;
  }

  private reserve(bytes: number): void {
    if (this.position + bytes <= this.buffer.length) return;
    this.flush();
    if (bytes > this.buffer.length) this.buffer = new Uint8Array(Math.max(bytes, 2 * this.buffer.length));
  }

  /** Moves the small-field buffer into the chunk list (a new buffer is started, so chunks are never shared). */
  private flush(): void {
    if (this.position === 0) return;
    this.parts.push(this.buffer.subarray(0, this.position));
    this.buffer = new Uint8Array(this.buffer.length);
    this.position = 0;
  }

  private byte(value: number): void {
    this.buffer[this.position++] = value;
    this.total++;
  }

  /**
   * An unsigned varint of a non-negative integer up to 2^53, or a negative one (int32/int64 fields encode
   * negatives as their 64-bit two's complement, ten bytes).
   */
  private varint(value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`protobuf varint: ${value} is not a safe integer`);
    this.reserve(10);
    if (value < 0) {
      let big = BigInt.asUintN(64, BigInt(value));
      while (big >= 0x80n) {
        this.byte(Number(big & 0x7fn) | 0x80);
        big >>= 7n;
      }
      this.byte(Number(big));
      return;
    }
    let v = value;
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** An int32, int64, enum or bool field. */
  int(field: number, value: number): this {
    this.tag(field, VARINT);
    this.varint(value);
    return this;
  }

  /** A float (fixed32) field. */
  float(field: number, value: number): this {
    this.tag(field, FIXED32);
    this.reserve(4);
    new DataView(this.buffer.buffer, this.buffer.byteOffset).setFloat32(this.position, value, true);
    this.position += 4;
    this.total += 4;
    return this;
  }

  /** A string field (UTF-8). */
  string(field: number, value: string): this {
    return this.bytes(field, [TEXT.encode(value)]);
  }

  /** A bytes field whose content is the concatenation of `chunks` (kept as they are, not copied). */
  bytes(field: number, chunks: readonly Uint8Array[]): this {
    const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    this.tag(field, LENGTH_DELIMITED);
    this.varint(length);
    const small = length <= 64;
    if (!small) this.flush();
    for (const chunk of chunks) {
      if (small) {
        this.reserve(chunk.length);
        this.buffer.set(chunk, this.position);
        this.position += chunk.length;
      } else {
        this.parts.push(chunk);
      }
      this.total += chunk.length;
    }
    return this;
  }

  /** An embedded message field. */
  message(field: number, inner: ProtoWriter): this {
    return this.bytes(field, inner.chunks());
  }

  /** The encoded message as chunks, in order. */
  chunks(): Uint8Array[] {
    this.flush();
    return [...this.parts];
  }

  /** The encoded message as one array. */
  bytesJoined(): Uint8Array {
    const out = new Uint8Array(this.total);
    let offset = 0;
    for (const chunk of this.chunks()) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}
