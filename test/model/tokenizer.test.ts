/**
 * tokenizer.json reader: BPE merge order, byte-level and SentencePiece byte-fallback
 * pipelines on small tokenizers built here, the shared models' reference ids, and clear
 * errors for files it cannot read.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EdgeKVError } from '../../src/errors.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { sharedModel, tinyTokenizerJson } from './fixtures.ts';

const stories = await sharedModel('stories260K');
const mix = await sharedModel('mix-27m');

function bpe(merges: string[], vocab: string[]): Tokenizer {
  return Tokenizer.fromJSON(JSON.stringify({
    model: { type: 'BPE', vocab: Object.fromEntries(vocab.map((t, i) => [t, i])), merges },
  }));
}

function byteLevelJson(extraVocab: string[], merges: string[][]): Record<string, unknown> {
  // the 256 byte characters of GPT-2's map, then merged pieces
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const chars = new Map<number, string>();
  bs.forEach((b) => chars.set(b, String.fromCodePoint(b)));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!chars.has(b)) chars.set(b, String.fromCodePoint(256 + n++));
  const vocab = ['<|bos|>', '<|doc|>', ...[...Array(256).keys()].map((b) => chars.get(b)!), ...extraVocab];
  return {
    added_tokens: [{ id: 0, content: '<|bos|>', special: true }, { id: 1, content: '<|doc|>', special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|bos|>' } }, { Sequence: { id: 'A' } }], special_tokens: { '<|bos|>': { ids: [0] } } },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab: Object.fromEntries(vocab.map((t, i) => [t, i])), merges },
  };
}

test('BPE applies merges by rank, leftmost first on ties', () => {
  // rank 0 "b c" fires before "a b": a + bc -> abc via rank 2
  let t = bpe(['b c', 'a b', 'a bc'], ['a', 'b', 'c', 'bc', 'ab', 'abc']);
  assert.equal(t.encode('abc'), [5]);
  t = bpe(['a b', 'b c', 'ab c'], ['a', 'b', 'c', 'ab', 'bc', 'abc']);
  assert.equal(t.encode('abc'), [5]);
  t = bpe(['a b', 'b c'], ['a', 'b', 'c', 'ab', 'bc']);
  assert.equal(t.encode('abc'), [3, 2]); // ab + c, not a + bc
  t = bpe(['a a'], ['a', 'aa']);
  assert.equal(t.encode('aaa'), [1, 0]); // leftmost pair first
  assert.equal(t.encode('aaaa'), [1, 1]);
});

test('SentencePiece-style: ▁ normalizer, BOS template, unk fusing, decode strips the first space', () => {
  const t = Tokenizer.fromJSON(JSON.stringify(tinyTokenizerJson()));
  assert.is(t.kind, 'sentencepiece');
  // "a b" (rank 0) fires before "▁ a" (rank 1), so "▁ab" is never reached from "▁ a b"
  assert.equal(t.encode('ab c'), [1, 3, 8, 3, 6]); // <s> ▁ ab ▁ c
  assert.equal(t.encode('abc'), [1, 3, 11]); // ▁ abc ("ab c", rank 4)
  assert.equal(t.encode('a', { addSpecialTokens: false }), [7]); // ▁a
  assert.equal(t.encode('xyz', { addSpecialTokens: false }), [3, 0]); // ▁ then one fused <unk>
  assert.equal(t.encode('a<s>b'), [1, 7, 1, 3, 5]);
  assert.equal(t.encode('a<s>b', { parseSpecial: false, addSpecialTokens: false }).includes(1), false);
  assert.is(t.decode([1, 3, 8, 3, 6], { skipSpecialTokens: true }), 'ab c');
  assert.is(t.decode([9, 3, 6]), 'ab c');
  assert.is(t.decode([1, 9]), '<s> ab');
});

test('byte-level: GPT-2 split, byte map, specials matched in text, UTF-8 round trip', () => {
  const t = Tokenizer.fromJSON(JSON.stringify(byteLevelJson(['Ġw', 'or', 'Ġwor', 'ld', 'Ġworld'], [['Ġ', 'w'], ['o', 'r'], ['Ġw', 'or'], ['l', 'd'], ['Ġwor', 'ld']])));
  assert.is(t.kind, 'byte-level');
  const ids = t.encode('hi world');
  assert.is(ids[0], 0);
  assert.is(ids[ids.length - 1], 262); // "Ġworld"
  assert.is(ids.length, 4); // <|bos|> h i Ġworld
  for (const s of ['', 'café € 日本 🎉', "it's  two\n\n spaces\t!", '<|doc|>x<|doc|>']) {
    assert.is(t.decode(t.encode(s), { skipSpecialTokens: true }), s.replace(/<\|doc\|>/g, ''), JSON.stringify(s));
    assert.is(t.decode(t.encode(s, { addSpecialTokens: false })), s);
  }
  assert.equal(t.encode('a<|doc|>b', { addSpecialTokens: false }), [2 + 0x61, 1, 2 + 0x62]);
});

test('unreadable tokenizer.json: a clear error naming the file and field', () => {
  const cases: Array<[string, string, string]> = [
    ['{not json', 'E_MODEL', 'not valid JSON'],
    ['[]', 'E_MODEL', 'JSON object'],
    ['{}', 'E_MODEL', '"model"'],
    ['{"model": {"type": "WordPiece", "vocab": {}}}', 'E_UNSUPPORTED', '"model.type"'],
    ['{"model": {"type": "BPE", "vocab": [1]}}', 'E_MODEL', '"model.vocab"'],
    ['{"model": {"type": "BPE", "vocab": {"a": -1}}}', 'E_MODEL', 'model.vocab["a"]'],
    ['{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}', 'E_MODEL', 'model.merges[0]'],
    ['{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [5]}}', 'E_MODEL', 'model.merges[0]'],
    ['{"model": {"type": "BPE", "vocab": {"a": 0}, "unk_token": "<unk>"}}', 'E_MODEL', 'model.unk_token'],
    ['{"model": {"type": "BPE", "vocab": {"a": 0}}, "normalizer": {"type": "Lowercase"}}', 'E_UNSUPPORTED', 'normalizer.type'],
    ['{"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Whitespace"}}', 'E_UNSUPPORTED', 'pre_tokenizer.type'],
    ['{"model": {"type": "BPE", "vocab": {"a": 0}}, "decoder": {"type": "WordPiece"}}', 'E_UNSUPPORTED', 'decoder.type'],
    ['{"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"id": 1}]}', 'E_MODEL', 'added_tokens[0]'],
  ];
  for (const [text, code, frag] of cases) {
    try {
      Tokenizer.fromJSON(text, '/m/tokenizer.json');
      assert.unreachable(`should throw for ${text}`);
    } catch (e) {
      assert.instance(e, EdgeKVError, String(e));
      assert.is((e as EdgeKVError).code, code, `${text}: ${(e as Error).message}`);
      assert.ok((e as Error).message.includes('/m/tokenizer.json'), (e as Error).message);
      assert.ok((e as Error).message.includes(frag), `${(e as Error).message} lacks ${frag}`);
    }
  }
  const t = bpe([], ['a']);
  assert.throws(() => t.encode('b'), (e: unknown) => e instanceof EdgeKVError && /not in the vocabulary/.test((e as Error).message));
  assert.throws(() => t.decode([7]), (e: unknown) => e instanceof EdgeKVError && (e as EdgeKVError).code === 'E_ARG');
});

(stories ? test : test.skip)('stories260K: reference ids (SentencePiece + byte fallback) and round trips', () => {
  const t = Tokenizer.fromJSON(readFileSync(join(stories!, 'tokenizer.json'), 'utf8'));
  const ref = JSON.parse(readFileSync(join(stories!, 'reference.json'), 'utf8'));
  for (const c of ref.tokenizer_cases) {
    assert.equal(t.encode(c.text), c.ids, JSON.stringify(c.text));
    assert.is(t.decode(c.ids, { skipSpecialTokens: true }), c.text);
  }
  assert.is(t.decode(ref.greedy.ids, { skipSpecialTokens: true }), ref.greedy.text);
  assert.is(t.encode(ref.perplexity.text).length, 987);
});

(mix ? test : test.skip)('mix-27m: reference ids (byte-level BPE, <|bos|> prepended) and sample texts', () => {
  const t = Tokenizer.fromJSON(readFileSync(join(mix!, 'tokenizer.json'), 'utf8'));
  const ref = JSON.parse(readFileSync(join(mix!, 'reference.json'), 'utf8'));
  for (const p of ref.prompts) assert.equal(t.encode(p.text), p.ids, p.source);
  for (const s of Object.values<{ greedy_ids: number[]; text: string }>(ref.samples)) assert.is(t.decode(s.greedy_ids), s.text);
  assert.equal(t.encode('a\n<|doc|>\nb', { addSpecialTokens: false }).includes(ref.tokenizer.doc_id), true);
});

test.run();
