/**
 * safetensors reader (https://github.com/huggingface/safetensors, format section):
 * an 8-byte little-endian u64 header length N, N bytes of JSON
 * `{ "<name>": { "dtype", "shape", "data_offsets": [begin, end] }, "__metadata__"?: {...} }`,
 * then the data region; offsets are relative to the data region's start.
 * Sharded checkpoints: `model.safetensors.index.json` with `weight_map: { name: shard }`.
 *
 * Validation is strict: every problem throws `EdgeKVError` code `E_MODEL` naming the
 * file and the field (truncated file, header length beyond the file, bad JSON, offsets
 * out of range or overlapping, unsupported dtype, shape/size mismatch, a shard the index
 * points at that is missing, tensors the index lists that a shard lacks).
 */
import { EdgeKVError } from '../errors.ts';
import type { ModelFiles } from './paths.ts';

/** Element types this runner reads. */
export const SUPPORTED_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type TensorDType = (typeof SUPPORTED_DTYPES)[number];
/** Bytes per element of each supported dtype. */
export const DTYPE_BYTES: Record<TensorDType, number> = { F32: 4, F16: 2, BF16: 2 };

/** Bytes of the little-endian u64 header length. */
const HEADER_LEN_BYTES = 8;
/** Upper bound on the JSON header (the reference implementation uses 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** The single-file checkpoint name. */
export const SINGLE_FILE = 'model.safetensors';
/** The shard index name. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** One tensor: where its bytes are and what they hold. */
export interface TensorInfo {
  name: string;
  dtype: TensorDType;
  shape: number[];
  /** Elements (product of shape; 1 for a scalar). */
  size: number;
  /** The file it comes from (for messages). */
  file: string;
  /** Its bytes (a view into the file's buffer; not necessarily aligned). */
  data: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  file: string;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

function fail(file: string, msg: string): never {
  throw new EdgeKVError('E_MODEL', `${file}: ${msg}`, file);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parse one safetensors file held in `bytes`. `file` names it in errors. Tensor data are
 * views into `bytes` (no copy).
 */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  if (bytes.byteLength < HEADER_LEN_BYTES) {
    fail(file, `truncated: ${bytes.byteLength} bytes, but a safetensors file starts with an ${HEADER_LEN_BYTES}-byte header length`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(dv.getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES) fail(file, `header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes (damaged or not a safetensors file)`);
  if (HEADER_LEN_BYTES + headerLen > bytes.byteLength) {
    fail(file, `header length ${headerLen} is beyond the file (${bytes.byteLength} bytes): the file is truncated or damaged`);
  }
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(HEADER_LEN_BYTES, HEADER_LEN_BYTES + headerLen));
    header = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(file, 'header must be a JSON object');
  const dataStart = HEADER_LEN_BYTES + headerLen;
  const dataLen = bytes.byteLength - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number }> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(file, '__metadata__ must be an object of strings');
      metadata = entry as Record<string, string>;
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(file, `${where}: entry must be an object with dtype, shape, data_offsets`);
    const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string') fail(file, `${where}: field "dtype" is missing or not a string`);
    if (!(SUPPORTED_DTYPES as readonly string[]).includes(dtype)) {
      fail(file, `${where}: dtype ${JSON.stringify(dtype)} is not supported (supported: ${SUPPORTED_DTYPES.join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) fail(file, `${where}: field "shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
      fail(file, `${where}: field "data_offsets" must be [begin, end] (non-negative integers), got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataLen) {
      fail(file, `${where}: data_offsets [${begin}, ${end}] out of range: the data region holds ${dataLen} bytes`);
    }
    const size = (shape as number[]).reduce((a, b) => a * b, 1);
    const dt = dtype as TensorDType;
    if (size * DTYPE_BYTES[dt] !== end - begin) {
      fail(file, `${where}: shape [${(shape as number[]).join(', ')}] x ${dt} needs ${size * DTYPE_BYTES[dt]} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    spans.push({ name, begin, end });
    tensors.set(name, { name, dtype: dt, shape: shape as number[], size, file, data: bytes.subarray(dataStart + begin, dataStart + end) });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const a = spans[i - 1], b = spans[i];
    if (b.begin < a.end) {
      fail(file, `tensor ${JSON.stringify(b.name)}: data_offsets [${b.begin}, ${b.end}] overlap tensor ${JSON.stringify(a.name)} [${a.begin}, ${a.end}]`);
    }
  }
  return { file, metadata, tensors };
}

/** All tensors of a checkpoint directory (single file or sharded). */
export interface Checkpoint {
  /** The files read (one, or the shards). */
  files: string[];
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** Shard names must be plain file names in the model directory. */
const SHARD_NAME = /^[^/\\]+\.safetensors$/;

/**
 * Read every tensor of a model directory: `model.safetensors.index.json` and its shards
 * when the index exists, else `model.safetensors`. Throws `E_MODEL` naming the missing or
 * damaged file and field.
 */
export async function readCheckpoint(files: ModelFiles): Promise<Checkpoint> {
  const indexBytes = await files.read(INDEX_FILE);
  if (indexBytes === null) {
    const bytes = await files.read(SINGLE_FILE);
    if (bytes === null) {
      throw new EdgeKVError('E_MODEL', `${files.location}: neither ${SINGLE_FILE} nor ${INDEX_FILE} exists`, files.describe(SINGLE_FILE));
    }
    const f = parseSafetensors(bytes, files.describe(SINGLE_FILE));
    return { files: [f.file], tensors: f.tensors, metadata: f.metadata };
  }
  const indexName = files.describe(INDEX_FILE);
  let index: unknown;
  try {
    index = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(indexBytes));
  } catch (e) {
    fail(indexName, `not valid UTF-8 JSON (${(e as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) fail(indexName, 'field "weight_map" is missing or not an object');
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !SHARD_NAME.test(shard)) {
      fail(indexName, `weight_map[${JSON.stringify(name)}] = ${JSON.stringify(shard)} is not a shard file name (expected NAME.safetensors in the same directory)`);
    }
    if (!byShard.has(shard)) byShard.set(shard, []);
    byShard.get(shard)!.push(name);
  }
  if (byShard.size === 0) fail(indexName, 'weight_map is empty');
  const tensors = new Map<string, TensorInfo>();
  const out: string[] = [];
  let metadata: Record<string, string> = {};
  for (const [shard, names] of byShard) {
    const bytes = await files.read(shard);
    if (bytes === null) {
      fail(indexName, `weight_map points at shard ${JSON.stringify(shard)} (for ${JSON.stringify(names[0])}${names.length > 1 ? ` and ${names.length - 1} more` : ''}), which is missing: ${files.describe(shard)}`);
    }
    const f = parseSafetensors(bytes, files.describe(shard));
    out.push(f.file);
    metadata = { ...metadata, ...f.metadata };
    for (const name of names) {
      const t = f.tensors.get(name);
      if (!t) fail(f.file, `tensor ${JSON.stringify(name)} is listed in ${INDEX_FILE} for this shard but is missing from it`);
      tensors.set(name, t);
    }
  }
  return { files: out, tensors, metadata };
}

/** The tensor `name`, or `E_MODEL` naming the checkpoint and the missing tensor. */
export function requireTensor(ck: Checkpoint, name: string, location: string): TensorInfo {
  const t = ck.tensors.get(name);
  if (!t) throw new EdgeKVError('E_MODEL', `${location}: tensor ${JSON.stringify(name)} is missing from the checkpoint (${ck.files.join(', ')})`, name);
  return t;
}

/** Require `t.shape` to equal `shape`. */
export function requireShape(t: TensorInfo, shape: number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new EdgeKVError('E_MODEL', `${t.file}: tensor ${JSON.stringify(t.name)} has shape [${t.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`, t.name);
  }
}
