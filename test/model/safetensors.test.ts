/**
 * safetensors reader: happy path (f32 / f16 / bf16, single file and shards) and damaged
 * input built here — truncation, header length beyond the file, bad JSON, offsets out of
 * range or overlapping, unsupported dtype, shape/size mismatch, shard index pointing at a
 * missing shard or lacking a tensor — each an `E_MODEL` naming the file and the field.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeKVError } from '../../src/errors.ts';
import { parseSafetensors, readCheckpoint } from '../../src/model/safetensors.ts';
import { dirFiles } from '../../src/model/paths.ts';
import { encodeTensor, safetensorsBytes, sharedModel, type FixtureTensor } from './fixtures.ts';

function sample(): FixtureTensor[] {
  return [
    encodeTensor('a.f32', 'F32', [2, 3], [1, 2, 3, 4, 5, 6]).tensor,
    encodeTensor('b.f16', 'F16', [4], [0.5, -1, 2, 65504]).tensor,
    encodeTensor('c.bf16', 'BF16', [1, 2], [3, -0.25]).tensor,
  ];
}

/** Assert `fn` throws E_MODEL whose message contains every fragment. */
function throwsModel(fn: () => unknown, ...fragments: string[]): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, EdgeKVError);
    assert.is((e as EdgeKVError).code, 'E_MODEL', (e as Error).message);
    for (const f of fragments) assert.ok((e as Error).message.includes(f), `message ${JSON.stringify((e as Error).message)} lacks ${JSON.stringify(f)}`);
    return;
  }
  assert.unreachable('should throw E_MODEL');
}

async function rejectsModel(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  try {
    await p;
  } catch (e) {
    throwsModel(() => { throw e; }, ...fragments);
    return;
  }
  assert.unreachable('should reject with E_MODEL');
}

/** Rewrite the JSON header of a file (keeps the data region). */
function withHeader(bytes: Uint8Array, edit: (h: Record<string, any>) => void): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  edit(h);
  const hb = new TextEncoder().encode(JSON.stringify(h));
  const out = new Uint8Array(8 + hb.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  out.set(bytes.subarray(8 + n), 8 + hb.length);
  return out;
}

test('parses f32, f16 and bf16 tensors with their shapes and bytes', () => {
  const f = parseSafetensors(safetensorsBytes(sample(), { format: 'pt', note: 'x' }), 'mem.safetensors');
  assert.is(f.metadata.note, 'x');
  assert.equal([...f.tensors.keys()], ['a.f32', 'b.f16', 'c.bf16']);
  const a = f.tensors.get('a.f32')!;
  assert.equal(a.shape, [2, 3]);
  assert.is(a.size, 6);
  assert.equal(Array.from(new Float32Array(a.data.slice().buffer)), [1, 2, 3, 4, 5, 6]);
  const b = f.tensors.get('b.f16')!;
  assert.equal(Array.from(new Uint16Array(b.data.slice().buffer)), [0x3800, 0xbc00, 0x4000, 0x7bff]);
  assert.is(f.tensors.get('c.bf16')!.dtype, 'BF16');
});

test('damaged headers: truncated, length beyond the file, bad JSON, not an object', () => {
  const good = safetensorsBytes(sample());
  throwsModel(() => parseSafetensors(good.subarray(0, 5), 'x.safetensors'), 'x.safetensors', 'truncated');
  throwsModel(() => parseSafetensors(good.subarray(0, 40), 'x.safetensors'), 'header length', 'beyond the file');
  const big = good.slice();
  new DataView(big.buffer).setBigUint64(0, 2n ** 62n, true);
  throwsModel(() => parseSafetensors(big, 'x.safetensors'), 'header length');
  const badJson = good.slice();
  badJson[9] = 0x7b; badJson[10] = 0x7b; // "{{"
  throwsModel(() => parseSafetensors(badJson, 'x.safetensors'), 'not valid UTF-8 JSON');
  const arr = new TextEncoder().encode('[1,2]');
  const f = new Uint8Array(8 + arr.length);
  new DataView(f.buffer).setBigUint64(0, BigInt(arr.length), true);
  f.set(arr, 8);
  throwsModel(() => parseSafetensors(f, 'x.safetensors'), 'JSON object');
});

test('damaged entries: offsets out of range / overlapping / reversed, dtype, shape-size mismatch, fields', () => {
  const good = safetensorsBytes(sample());
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { h['a.f32'].data_offsets = [0, 10_000]; }), 'f'), '"a.f32"', 'data_offsets', 'out of range');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { h['a.f32'].data_offsets = [8, 4]; }), 'f'), 'data_offsets', 'out of range');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { h['b.f16'].data_offsets = [16, 24]; }), 'f'), 'overlap');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { h['a.f32'].dtype = 'I8'; }), 'f'), '"a.f32"', 'dtype "I8" is not supported');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { h['a.f32'].shape = [3, 3]; }), 'f'), 'shape [3, 3]', 'needs 36 bytes');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { h['a.f32'].shape = [2, -3]; }), 'f'), '"shape"');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { delete h['a.f32'].data_offsets; }), 'f'), '"data_offsets"');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { delete h['a.f32'].dtype; }), 'f'), '"dtype"');
  throwsModel(() => parseSafetensors(withHeader(good, (h) => { h.__metadata__ = 5; }), 'f'), '__metadata__');
});

test('random byte flips and truncations of a real header: a clear E_MODEL or a valid parse, never a crash', async () => {
  const dir = await sharedModel('stories260K');
  const bytes = dir ? new Uint8Array(readFileSync(join(dir, 'model.safetensors'))) : safetensorsBytes(sample());
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  let seed = 7;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  let errors = 0;
  for (let i = 0; i < 300; i++) {
    const b = bytes.slice();
    const at = Math.floor(rnd() * (8 + n));
    b[at] ^= 1 << Math.floor(rnd() * 8);
    const cut = i % 3 === 0 ? b.subarray(0, Math.floor(rnd() * b.length)) : b;
    try {
      parseSafetensors(cut, 'fuzz.safetensors');
    } catch (e) {
      assert.instance(e, EdgeKVError, String(e));
      assert.is((e as EdgeKVError).code, 'E_MODEL');
      assert.ok((e as Error).message.startsWith('fuzz.safetensors: '));
      errors++;
    }
  }
  assert.ok(errors > 100, `only ${errors} of 300 damaged files were refused`);
});

test('sharded checkpoint: index + shards read; missing shard, missing tensor, bad shard name, bad index', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekv-shards-'));
  const [a, b, c] = sample();
  writeFileSync(join(dir, 'm-1.safetensors'), safetensorsBytes([a, b]));
  writeFileSync(join(dir, 'm-2.safetensors'), safetensorsBytes([c]));
  const index = { metadata: {}, weight_map: { 'a.f32': 'm-1.safetensors', 'b.f16': 'm-1.safetensors', 'c.bf16': 'm-2.safetensors' } };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  const ck = await readCheckpoint(dirFiles(dir));
  assert.equal([...ck.tensors.keys()].sort(), ['a.f32', 'b.f16', 'c.bf16']);
  assert.is(ck.files.length, 2);

  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...index.weight_map, 'c.bf16': 'm-3.safetensors' } }));
  await rejectsModel(readCheckpoint(dirFiles(dir)), 'model.safetensors.index.json', 'm-3.safetensors', 'missing');
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...index.weight_map, 'd.x': 'm-2.safetensors' } }));
  await rejectsModel(readCheckpoint(dirFiles(dir)), 'm-2.safetensors', '"d.x"', 'missing');
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'a.f32': '../etc/passwd.safetensors' } }));
  await rejectsModel(readCheckpoint(dirFiles(dir)), 'weight_map["a.f32"]');
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
  await rejectsModel(readCheckpoint(dirFiles(dir)), 'model.safetensors.index.json', 'not valid');
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
  await rejectsModel(readCheckpoint(dirFiles(dir)), '"weight_map"');
});

test('no weights at all, and a damaged real single file in a temp dir', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekv-empty-'));
  await rejectsModel(readCheckpoint(dirFiles(dir)), 'neither model.safetensors nor model.safetensors.index.json');
  const src = await sharedModel('stories260K');
  if (src) copyFileSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
  else writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(sample()));
  const ok = await readCheckpoint(dirFiles(dir));
  assert.ok(ok.tensors.size >= 3);
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 1));
  await rejectsModel(readCheckpoint(dirFiles(dir)), join(dir, 'model.safetensors'), 'out of range');
});

test.run();
