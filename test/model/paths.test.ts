/** Model directory resolution: --model, then $EDGEKV_MODELS_DIR/<name>, then <repo>/../shared/models/<name>. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingModelMessage, modelFiles, resolveModelDir, MODELS_DIR_ENV } from '../../src/model/paths.ts';
import { EdgeKVError } from '../../src/errors.ts';

test('resolveModelDir: option, then environment, then the shared default; says what is missing', async () => {
  const saved = process.env[MODELS_DIR_ENV];
  try {
    const root = mkdtempSync(join(tmpdir(), 'edgekv-models-'));
    mkdirSync(join(root, 'm'));
    writeFileSync(join(root, 'm', 'config.json'), '{}');
    process.env[MODELS_DIR_ENV] = root;
    assert.equal(await resolveModelDir('m'), { dir: join(root, 'm'), via: 'env', exists: true });
    const opt = await resolveModelDir('m', join(root, 'other'));
    assert.equal(opt, { dir: join(root, 'other'), via: 'option', exists: false });
    assert.ok(missingModelMessage(opt).includes(join(root, 'other')));
    assert.ok(missingModelMessage(opt).includes('--model'));
    delete process.env[MODELS_DIR_ENV];
    const d = await resolveModelDir('zz-not-a-model');
    assert.is(d.via, 'default');
    assert.ok(d.dir.endsWith('/shared/models/zz-not-a-model') && !d.dir.includes('..'), d.dir);
    assert.is(d.exists, false);
    assert.ok(missingModelMessage(d).includes(MODELS_DIR_ENV));
  } finally {
    if (saved === undefined) delete process.env[MODELS_DIR_ENV];
    else process.env[MODELS_DIR_ENV] = saved;
  }
});

test('modelFiles: directories read files, absent files are null, bad sources are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgekv-files-'));
  writeFileSync(join(dir, 'a.json'), 'hi');
  const f = modelFiles(dir);
  assert.equal(Array.from((await f.read('a.json'))!), [104, 105]);
  assert.is(await f.read('b.json'), null);
  assert.is(f.describe('a.json'), join(dir, 'a.json'));
  const u = modelFiles(new URL(`file://${dir}/`));
  assert.equal(Array.from((await u.read('a.json'))!), [104, 105]);
  assert.throws(() => modelFiles(42 as never), (e: unknown) => e instanceof EdgeKVError && (e as EdgeKVError).code === 'E_ARG');
});

test.run();
